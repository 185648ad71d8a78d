"""The two dashboards of each project: ``<project>_metrics`` and ``<project>_stats``."""

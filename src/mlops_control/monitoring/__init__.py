"""Monitoring: feature statistics and drift, the local metrics store, and the one definition
of the ``<project>_metrics`` and ``<project>_stats`` dashboards."""

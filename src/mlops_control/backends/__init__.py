"""Implementations of :class:`mlops_control.steps.backend.Backend`: local processes, SageMaker."""

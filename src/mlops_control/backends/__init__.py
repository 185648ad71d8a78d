"""Implementations of :class:`mlops_control.steps.backend.Backend` (local processes live with
the local runtime; SageMaker lives here)."""

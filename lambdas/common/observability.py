"""One Logger, Tracer and Metrics per process; the service name comes from
``POWERTOOLS_SERVICE_NAME``, which the CDK factory sets per function."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = "MLOpsControl"

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)

# The shared steps log through the standard library; route them into the structured logger.
for _name in ("mlops_control.steps", "mlops_control.reconcile"):
    logging.getLogger(_name).handlers = logger.handlers
    logging.getLogger(_name).setLevel(logger.log_level)

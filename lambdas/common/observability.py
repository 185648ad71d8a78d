"""One Logger, Tracer and Metrics per process; the service name comes from
``POWERTOOLS_SERVICE_NAME``, which the CDK factory sets per function."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE = "MLOpsControl"

logger = Logger()
# X-Ray records AWS calls (botocore) and MLflow's REST calls (http.client) as subsegments.
# Not auto_patch: patching botocore imports it (60-80 ms of every handler's import), and the
# handlers import boto3 only when they make their first client (adapters.client); botocore is
# patched there, just before (adapters.trace_aws_calls). http.client is in the stdlib: now.
tracer = Tracer(auto_patch=False)
tracer.patch(["httplib"])
metrics = Metrics(namespace=METRICS_NAMESPACE)

# The shared steps log through the standard library; route them into the structured logger.
for _name in ("mlops_control.steps", "mlops_control.reconcile"):
    logging.getLogger(_name).handlers = logger.handlers
    logging.getLogger(_name).setLevel(logger.log_level)

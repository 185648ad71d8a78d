"""Thin Lambda handlers of the AWS control plane.

Each handler does four things (aws-lambda-handler-cookbook style): Powertools decorators in a
fixed order (environment, logger context, metrics, tracer), parse the event into a typed
model, call one logic function, return a model. Business rules live in ``mlops_control``;
AWS clients are made in :mod:`lambdas.common.adapters`.

Imports are limited to boto3, Powertools, pydantic, the standard library and the
standard-library-only parts of ``mlops_control`` (tests/lambdas/test_imports.py proves it).
"""

"""The reference live data is compared with: the training statistics stored with the run of
the model version an endpoint serves (``control/training_stats.json``). Read through MLflow's
REST API, so the Lambdas can use it too."""

from __future__ import annotations

import json
import logging
from typing import Any

from mlops_control import names
from mlops_control.errors import NotFound
from mlops_control.registry import RegistryClient

logger = logging.getLogger("mlops_control.monitoring")


def live_version(registry: RegistryClient, project: str, endpoint: str) -> str | None:
    """The version the registry says is in service at ``endpoint`` (the newest, should two
    say so for a moment during a switch)."""
    serving = [v for v in registry.model_versions(project)
               if v.tags.get(names.TAG_ENDPOINT) == endpoint
               and v.tags.get(names.TAG_STATUS) == names.Status.IN_SERVICE]
    return max(serving, key=lambda v: v.number).version if serving else None


def training_stats(registry: RegistryClient, project: str, version: str
                   ) -> dict[str, Any] | None:
    """The training statistics of ``project`` version ``version``, or None when its run has
    none (a model trained before they existed, or registered by hand). An unreachable MLflow
    raises :class:`RegistryError`: that is worth another try, unlike a missing artifact."""
    try:
        run_id = registry.get_model_version(project, version).run_id
        if not run_id:
            return None
        document = json.loads(registry.run_artifact(run_id, names.TRAINING_STATS_ARTIFACT))
    except (NotFound, ValueError) as exc:
        logger.info("no training statistics", extra={"project": project, "version": version,
                                                      "reason": str(exc)[:200]})
        return None
    return document if isinstance(document, dict) and "features" in document else None

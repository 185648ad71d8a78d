"""The ``train`` command of the shared image: one training job, SageMaker's contract.

It reads which project to train and its parameters from ``hyperparameters.json``, validates
the project against the model contract, runs the project's entry point in this very process
(so the job costs little more than running train.py by hand), then tags the registered
version with its lineage and copies the model to ``model/``. Any failure is written to
``output/failure`` and the job exits non-zero; nothing half-done is registered by us.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_control import contract, names
from mlops_control.errors import ControlCentreError
from mlops_control.monitoring.training_data import DataCapture
from mlops_control.sm_layout import MLRoot
from mlops_control.steps import promotion

RESERVED_HYPERPARAMETERS = {
    "project", "entry_point", "data_location", "data_version", "trigger", "training_job",
    "code_revision",
}


@dataclass
class TrainingResult:
    project: str
    run_id: str
    versions: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    promotion: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def projects_root() -> Path:
    return Path(os.environ.get(names.ENV_PROJECTS_DIR, "projects")).resolve()


def run(ml_root: MLRoot) -> TrainingResult:
    started = time.monotonic()
    hyper = ml_root.read_hyperparameters()
    project_name = hyper.get("project")
    if not project_name:
        raise ControlCentreError(
            f"{ml_root.hyperparameters_file} does not say which project to train: "
            'add {"project": "<name>"}'
        )
    contract.check_name(project_name)
    project_dir = projects_root() / project_name
    if not project_dir.is_dir():
        raise ControlCentreError(
            f"no project {project_name!r} under {projects_root()}; "
            f"known: {', '.join(sorted(p.name for p in projects_root().iterdir() if p.is_dir()))}"
        )
    entry_point_name = hyper.get("entry_point", "main")
    params = {k: v for k, v in hyper.items() if k not in RESERVED_HYPERPARAMETERS}

    channel = ml_root.channel()
    if channel.exists() and any(channel.iterdir()):
        os.environ[names.ENV_DATA_LOCATION] = str(channel)
    data_location = hyper.get("data_location") or os.environ.get(names.ENV_DATA_LOCATION, "")

    # Validation runs before anything touches the tracking server.
    valid = contract.validate(project_dir)
    entry_point = valid.spec.entry_point(entry_point_name)
    command_line = entry_point.command_line(params)
    _check_writable(ml_root)

    test_env = os.environ.get(names.ENV_TEST_ENV, "").lower() == "true"
    _progress(f"training {project_name} ({'test slice' if test_env else 'full data'}"
              f"{', data from ' + data_location if data_location else ''})")

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(project_name)
    experiment_id = (experiment.experiment_id if experiment
                     else client.create_experiment(project_name))
    lineage = {
        names.TAG_LINEAGE_TRIGGER: hyper.get("trigger")
        or os.environ.get(names.ENV_TRIGGER, names.Trigger.MANUAL),
        names.TAG_LINEAGE_DATA_LOCATION: data_location or "bundled",
        names.TAG_LINEAGE_DATA_VERSION: hyper.get("data_version", ""),
        names.TAG_LINEAGE_TRAINING_JOB: hyper.get("training_job")
        or os.environ.get("TRAINING_JOB_NAME")
        or os.environ.get(names.ENV_TRAINING_JOB, "local"),
        names.TAG_LINEAGE_CODE_REVISION: hyper.get("code_revision")
        or os.environ.get(names.ENV_CODE_REVISION, "unknown"),
    }
    lineage = {k: v for k, v in lineage.items() if v}
    run_obj = client.create_run(
        experiment_id, tags={**lineage, "mlflow.source.name": str(project_dir),
                             "mlflow.project.entryPoint": entry_point_name},
    )
    run_id = run_obj.info.run_id
    client.log_dict(run_id, _smoke_test_payload(valid), names.SMOKE_TEST_ARTIFACT)

    capture = DataCapture()
    opened = _watch_opens([data_location, os.environ.get(names.ENV_DATA_LOCATION, "")])
    try:
        with _run_context(run_id, project_dir, project_name):
            _run_entry_point(command_line, project_dir, capture)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        # A version the script registered before it failed is no trained model anyone asked
        # for: it must never deploy (a promotion gate or a stage alias could pick it).
        removed = _remove_registered_by(client, run_id, run_obj.info.start_time)
        if removed:
            exc.add_note(f"the failed run had registered {removed}")
        raise

    finished = client.get_run(run_id)
    if finished.info.status == "RUNNING":
        client.set_terminated(run_id, "FINISHED")
    result = TrainingResult(project=project_name, run_id=run_id,
                            metrics=dict(finished.data.metrics))
    if data_location and not _data_was_read(
            client, finished, [data_location, os.environ.get(names.ENV_DATA_LOCATION, "")],
            opened):
        # The version must not claim it was trained on data its project never read.
        lineage.pop(names.TAG_LINEAGE_DATA_VERSION, None)
        lineage[names.TAG_LINEAGE_DATA_LOCATION] = "unknown"
        lineage[names.TAG_LINEAGE_DATA_NOT_READ] = data_location
        result.warnings.append(
            f"{project_name} did not read the data at {data_location}: the run logs no dataset "
            f"input or param naming it and opened no file under it; read "
            f"${names.ENV_DATA_LOCATION} in get_data() and log it with mlflow.log_input("
            "mlflow.data.from_pandas(frame, source=location))")
        _progress("WARNING: " + result.warnings[-1])
    # Before the promotion gate can start a deployment that compares live data with them.
    _log_training_stats(client, run_id, project_dir, capture)
    versions = _check_registrations(client, run_id, project_name, entry_point.command,
                                    register_wanted=not test_env,
                                    started_ms=run_obj.info.start_time)
    for version in versions:
        for key, value in lineage.items():
            client.set_model_version_tag(project_name, version, key, value)
        result.versions.append(version)
    _promote(client, project_dir, project_name, result)
    _export_model(mlflow, run_id, experiment_id, ml_root.model_dir)
    result.seconds = round(time.monotonic() - started, 3)
    (ml_root.output_dir / "result.json").parent.mkdir(parents=True, exist_ok=True)
    (ml_root.output_dir / "result.json").write_text(result.to_json())
    if result.versions:
        _progress(f"registered {project_name} version {', '.join(result.versions)}"
                  f" (run {run_id})")
    else:
        _progress(f"trained {project_name} without registering (run {run_id})")
    return result


def _promote(client: Any, project_dir: Path, project: str, result: TrainingResult) -> None:
    """Run the project's promotion gate, if it has one, on each version just registered."""
    gate = promotion.load(project_dir)
    if gate is None or not result.versions:
        return
    decision = promotion.evaluate(gate, result.metrics)
    for version in result.versions:
        client.set_model_version_tag(project, version, names.TAG_PROMOTION, decision.reason)
        if decision.promote:
            client.set_model_version_tag(project, version, names.TAG_DEPLOY, decision.stage)
    result.promotion = decision.reason
    _progress(f"promotion gate: {decision.reason}")


def _log_training_stats(client: Any, run_id: str, project_dir: Path,
                        capture: DataCapture) -> None:
    """Store the training data's statistics with the run: the reference drift is measured
    against. Monitoring is not worth a failed training job, so a failure here is reported
    and training goes on."""
    try:
        with _run_context(run_id, project_dir, project_dir.name):
            document = capture.statistics(project_dir)
        client.log_dict(run_id, document, names.TRAINING_STATS_ARTIFACT)
    except Exception as exc:
        _progress(f"no training statistics (drift will not be measured): "
                  f"{type(exc).__name__}: {exc}")
        return
    _progress(f"training statistics: {len(document['features'])} features of "
              f"{document['rows']} rows in {document['seconds']:.3f}s ({document['source']})")


def _smoke_test_payload(valid: contract.ValidProject) -> dict[str, Any]:
    """The contract's test slice in MLflow's ``dataframe_split`` form, kept with the run so a
    deployment anywhere (a Lambda cannot import pandas) can smoke-test the endpoint."""
    X = valid.X_test
    if hasattr(X, "to_dict"):
        split = X.to_dict(orient="split")
        split.pop("index", None)
        return {"dataframe_split": split}
    return {"instances": [list(map(_plain, row)) for row in X]}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@contextlib.contextmanager
def _run_context(run_id: str, project_dir: Path, project: str) -> Iterator[None]:
    """What ``mlflow run`` gives an entry point: the run id, the experiment, the project
    folder as working directory and first import path."""
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")}
    saved_cwd, saved_path, saved_argv = os.getcwd(), list(sys.path), list(sys.argv)
    os.environ["MLFLOW_RUN_ID"] = run_id
    os.environ["MLFLOW_EXPERIMENT_NAME"] = project
    os.chdir(project_dir)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        sys.argv[:] = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _watch_opens(locations: list[str]) -> set[str]:
    """Files under ``locations`` this process opens from now on (Python's audit hook sees
    ``open()``, so pandas and the csv module; not C++ readers such as pyarrow's, which is why
    a project should also log the data as a dataset input)."""
    roots = [os.path.realpath(loc) for loc in locations if loc and "://" not in loc]
    opened: set[str] = set()
    if not roots:
        return opened

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | Path):
            path = os.path.realpath(args[0])
            if any(path == r or path.startswith(r + os.sep) for r in roots):
                opened.add(path)

    sys.addaudithook(hook)
    return opened


def _data_was_read(client: Any, run: Any, locations: list[str], opened: set[str]) -> bool:
    """Whether the run shows it used the data it was given: a dataset input or a param naming
    the location (or the file the channel holds), or a file under it opened."""
    if opened:
        return True
    names_ = {loc for loc in locations if loc}
    for loc in list(names_):
        if "://" not in loc and os.path.exists(loc):
            names_.add(os.path.realpath(loc))
            if os.path.isdir(loc):
                names_ |= {os.path.realpath(os.path.join(loc, f)) for f in os.listdir(loc)}
    texts = [str(v) for v in run.data.params.values()]
    inputs = getattr(run, "inputs", None)
    for item in getattr(inputs, "dataset_inputs", None) or []:
        texts.append(str(item.dataset.source))
    for text in texts:
        if any(n in text for n in names_):
            return True
        for candidate in _paths_in(text):
            if os.path.realpath(candidate) in names_:
                return True
    return False


def _paths_in(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(value, dict):
        return [str(v) for v in value.values() if isinstance(v, str)]
    return [text]


def _check_writable(ml_root: MLRoot) -> None:
    """Fail before training, not after registering, when the job cannot write its outputs
    (on SageMaker /opt/ml is mounted at run time, owned by root)."""
    for folder in (ml_root.model_dir, ml_root.output_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ControlCentreError(
                f"cannot write {folder} ({exc.strerror}) as uid {os.getuid()}: the training "
                "image must run as a user that can write the mounted /opt/ml (it runs as root; "
                "see docs/aws.md)") from None


def _check_registrations(client: Any, run_id: str, project: str, command: str,
                         register_wanted: bool, started_ms: int) -> list[str]:
    """The versions this run registered under the project's name, after checking the script
    did what was asked: a version under another name, or one registered although TEST_ENV
    asked for none, is deleted (a stray must never deploy or puzzle anyone) and the job fails
    saying what to change; so does a script that was asked to register and did not."""
    script = command.split()[1] if len(command.split()) > 1 else "the entry point"
    created = client.search_model_versions(f"run_id='{run_id}'")
    ours = [str(v.version) for v in created if v.name == project]
    stray = [v for v in created if v.name != project]
    if not register_wanted:
        stray += [v for v in created if v.name == project]
    problems = []
    for version in stray:
        removed = _remove_stray(client, version.name, str(version.version), started_ms)
        if version.name != project:
            problems.append(
                f"{script} registered version {version.version} of {version.name!r}, not of "
                f"{project!r} ({removed}); register under the project's name: "
                f"registered_model_name={project!r}")
        else:
            problems.append(
                f"{script} registered version {version.version} of {project!r} although "
                f"{names.ENV_TEST_ENV}=True asked it not to ({removed}); pass "
                f"registered_model_name=None when os.environ['{names.ENV_TEST_ENV}'] is 'True'")
    if register_wanted and not ours and not problems:
        problems.append(
            f"{script} finished without registering a version of {project!r}; pass "
            f"registered_model_name={project!r} to mlflow.<flavor>.log_model(...)")
    if problems:
        raise ControlCentreError("; ".join(problems))
    return ours


def _remove_registered_by(client: Any, run_id: str, started_ms: int) -> str:
    """Delete every version the run registered; what was done, for the failure message."""
    try:
        created = client.search_model_versions(f"run_id='{run_id}'")
    except Exception as exc:
        return (f"versions that could not be looked up ({type(exc).__name__}: {exc}); "
                f"delete any of run {run_id} by hand")
    done = []
    for version in created:
        outcome = _remove_stray(client, version.name, str(version.version), started_ms)
        done.append(f"version {version.version} of {version.name!r} ({outcome})")
        _progress(f"the failed run had registered {done[-1]}")
    return ", ".join(done)


def _remove_stray(client: Any, name: str, version: str, started_ms: int) -> str:
    try:
        client.delete_model_version(name, version)
        model = client.get_registered_model(name)
        # A registered model the stray itself created, now empty, goes too.
        if model.creation_timestamp >= started_ms and not client.search_model_versions(
                f"name='{name}'"):
            client.delete_registered_model(name)
            return "deleted it and the model it created"
    except Exception as exc:
        return f"could not delete it ({type(exc).__name__}: {exc}); delete it by hand"
    return "deleted it"


def _run_entry_point(command_line: str, project_dir: Path,
                     capture: DataCapture | None = None) -> None:
    """Run the command as ``mlflow run`` does (``bash -c``); one simple ``python x.py ...``
    command runs in this process instead, with exactly the words bash would give it."""
    from mlops_control.mlproject import shell_words

    argv = shell_words(command_line) or []
    if len(argv) >= 2 and Path(argv[0]).name.startswith("python") and argv[1].endswith(".py"):
        script = project_dir / argv[1]
        sys.argv[:] = [str(script), *argv[2:]]
        sys.path.insert(0, str(project_dir))
        # Modules the project imports by plain name (``from data import get_data``) must be
        # the project's own, not a previous project's left in the module cache.
        for local in [p.stem for p in project_dir.glob("*.py")]:
            sys.modules.pop(local, None)
        if capture is not None:
            capture.install(project_dir)
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise ControlCentreError(f"{argv[1]} exited with status {exc.code}") from None
        return
    # ``python`` in the command is this job's interpreter, as in MLflow's activated env.
    env = {**os.environ, "PATH": os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    completed = subprocess.run(["bash", "-c", command_line], cwd=project_dir, env=env,
                               check=False)
    if completed.returncode != 0:
        raise ControlCentreError(
            f"the entry point command exited with status {completed.returncode}: "
            f"{command_line.strip()}")


def _export_model(mlflow: Any, run_id: str, experiment_id: str, model_dir: Path) -> None:
    """Copy the run's logged model to ``model/``: SageMaker uploads it as the job's output."""
    models = mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    if not models:
        raise ControlCentreError(
            "the entry point finished without logging a model; log one with "
            "mlflow.<flavor>.log_model(...)"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(artifact_uri=models[0].artifact_location)
    for item in Path(local).iterdir():
        target = model_dir / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)


def _progress(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)

"""Property tests of the scoring path in one process, fast enough for thousands of cases:
any body, any content type, sent alone or in a batch with others, is answered exactly once,
with 200, a 4xx naming the problem, or a 500 MODEL_ERROR when the model itself raised, never
an exception that would leave the request without an answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_control.serving import protocol
from mlops_control.serving.batcher import MicroBatcher, Pending
from mlops_control.serving.served import ServedModel, prepare
from tests import models
from tests.model_fixtures import Shelf
from tests.models import SavedModel
from tests.reliability import figures

KEY = "fuzz.scoring_in_process"
MODELS = ("forest", "mixed", "tensor", "probabilities", "fragile", "unsigned")


def unsigned(path: Path) -> SavedModel:
    """A forest saved without a signature: served through the ``frame`` plan, where the
    model alone judges its input."""
    import mlflow.sklearn

    forest = models.forest(path.with_name("unsigned-source"))
    mlflow.sklearn.save_model(forest.estimator, str(path), pip_requirements=models.PIP,
                              serialization_format="skops",
                              skops_trusted_types=models.FOREST_TYPES)
    return SavedModel(path, forest.estimator, forest.X)


@pytest.fixture(scope="module")
def served(shelf: Shelf, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[ServedModel, Any]]:
    built = {}
    for key in MODELS:
        if key == "unsigned":
            saved = unsigned(tmp_path_factory.mktemp("unsigned") / "model")
        else:
            saved = getattr(shelf, key)()
        built[key] = (prepare(saved.path, key, "1"), saved)
    assert built["unsigned"][0].plan.mode == "frame"
    return built


scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.floats(-1e6, -1e-3) | st.text(max_size=8) | st.sampled_from(["1.5", "nan", "inf", "1e999", "true", "",
                                                    "paris", "2024-01-01", "\u0661"]))
json_like = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                         | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=10)


@st.composite
def documents(draw: st.DrawFn, saved: Any) -> Any:
    """Scoring bodies near the model's shape, so the search reaches conversion and predict:
    real rows of the model's data with some cells, names or shapes changed."""
    frame = saved.X if hasattr(saved.X, "columns") else None
    columns = list(frame.columns) if frame is not None else [f"#{i}" for i in
                                                             range(saved.X.shape[1])]
    start = draw(st.integers(0, 50))
    base = (frame.iloc[start:start + draw(st.integers(1, 3))].values.tolist()
            if frame is not None else saved.X[start:start + 2].tolist())
    rows: list[Any] = [list(row) for row in base]
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][draw(st.integers(0, len(columns) - 1))] = draw(scalars)
    names = list(columns)
    mutation = draw(st.integers(0, 9))
    if mutation == 0:
        names = draw(st.permutations(names))
    elif mutation == 1:
        names = names[: draw(st.integers(0, len(names)))]
    elif mutation == 2:
        names = [*names, draw(st.text(max_size=6))]
    elif mutation == 3:
        rows = draw(st.lists(json_like, max_size=3))
    kind = draw(st.sampled_from((*protocol.FORMATS, "other")))
    if kind == "dataframe_split":
        payload: Any = draw(st.sampled_from([
            {"columns": names, "data": rows}, {"data": rows}, {"columns": rows, "data": rows},
            {"columns": names, "data": rows, "index": list(range(len(rows)))},
            {"columns": names, "data": rows, "extra": 1}]))
    elif kind in ("dataframe_records", "instances"):
        payload = [dict(zip(names, row, strict=False)) if isinstance(row, list) else row
                   for row in rows]
        if draw(st.integers(0, 3)) == 0:
            payload = rows
    elif kind == "inputs":
        payload = draw(st.sampled_from([
            {n: [r[i] if isinstance(r, list) and i < len(r) else None for r in rows]
             for i, n in enumerate(names)}, rows, {n: 1 for n in names}]))
    else:
        payload = draw(json_like)
    document = {kind: payload} if kind != "other" else payload
    if draw(st.integers(0, 19)) == 0 and isinstance(document, dict):
        document = {**document, "inputs": []}
    return document


def csv_bodies(columns: list[str]) -> st.SearchStrategy[bytes]:
    cell = st.sampled_from(["1", "1.5", "", "abc", "nan", "1e999", '"x,y"', '"', "true", "-0",
                            "\r", "a\rb", "\u00a1", "\x00"])
    header = st.lists(st.sampled_from(columns) | st.text("abc_", max_size=4), max_size=6) \
        | st.just(columns)
    return st.tuples(header, st.lists(st.lists(cell, max_size=8), max_size=3)).map(
        lambda hr: ("\n".join([",".join(hr[0]), *(",".join(r) for r in hr[1])]) + "\n")
        .encode())


content_types = st.sampled_from([None, "application/json", "text/csv"]) | st.sampled_from([
    "application/json; charset=utf-8", "text/csv; charset=latin-1", "text/plain",
    "application/json; charset", "application/x-www-form-urlencoded", "TEXT/CSV", ";;;",
    "application/json;charset=\"UTF-8\""])


def answer(batch: list[tuple[ServedModel, bytes, str | None]]) -> list[list[tuple[int, bytes]]]:
    """Parse and submit every request as the scoring app does, run the batcher once, and
    return the replies each request got."""
    replies: list[list[tuple[int, bytes]]] = [[] for _ in batch]

    async def run() -> None:
        batcher = MicroBatcher()
        for i, (model, body, content_type) in enumerate(batch):
            try:
                parsed = protocol.parse(body, content_type, model.plan)
            except protocol.RequestError as exc:
                replies[i].append((exc.status, exc.body()))
                continue

            def reply(status: int, payload: bytes, i: int = i) -> None:
                replies[i].append((status, payload))

            batcher.submit(Pending(model, parsed, reply, 0.0))
        await asyncio.sleep(0)  # the batcher flushes at the end of this loop pass
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert errors == [], f"the batcher raised: {errors[0].get('exception')!r}"
    return replies


def check(replies: list[tuple[int, bytes]]) -> int:
    assert len(replies) == 1, f"answered {len(replies)} times"
    status, body = replies[0]
    payload = orjson.loads(body)
    if status == 200:
        assert isinstance(payload["predictions"], list)
    else:
        assert status in (400, 413, 415) or (status == 500 and payload["error_code"] ==
                                            protocol.MODEL_ERROR), (status, payload)
        assert payload["message"]
    return status


@settings(max_examples=figures.examples(700), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_any_batch_of_requests_is_answered_once_each(served, data):
    batch = []
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(MODELS))
        model, saved = served[key]
        columns = list(saved.X.columns) if hasattr(saved.X, "columns") else ["a", "b"]
        content_type = data.draw(content_types)
        if content_type and "csv" in content_type.lower():
            body = data.draw(csv_bodies(columns))
        elif data.draw(st.integers(0, 9)) == 0:
            body = data.draw(st.binary(max_size=60))
        else:
            document = data.draw(documents(saved))
            body = json.dumps(document, allow_nan=True).encode()
        batch.append((model, body, content_type))
    for replies in answer(batch):
        status = check(replies)
        figures.add(KEY, "requests")
        figures.add(KEY, f"status_{status}")


def test_deeply_nested_json_is_a_400(served):
    model, _ = served["forest"]
    for body in (b"[" * 100_000, b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        [[(status, payload)]] = answer([(model, body, "application/json")])
        assert status == 400, payload


def test_column_names_that_are_not_strings_are_a_400(served):
    model, _ = served["forest"]
    for columns in ([[1]], [{"a": 1}], [None], [1.5]):
        body = json.dumps({"dataframe_split": {"columns": columns, "data": [[1.0]]}}).encode()
        [[(status, payload)]] = answer([(model, body, None)])
        assert status == 400 and b"column" in payload, payload

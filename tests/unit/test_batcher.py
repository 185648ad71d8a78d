"""Micro-batching: requests that arrive together share one predict call, and a bad request or
a model failure only affects the requests it belongs to."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from mlops_control.serving import protocol
from mlops_control.serving.batcher import MicroBatcher, Pending
from mlops_control.serving.served import ServedModel, prepare
from tests.model_fixtures import Shelf


class Recorder:
    """Counts predict calls of a model and what each observer call was told."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.batches: list[tuple[int, bool]] = []

    def wrap(self, served: ServedModel) -> ServedModel:
        inner = served.model.predict_fn

        def predict(X: Any) -> Any:
            self.calls.append(len(X))
            return inner(X)

        return replace(served, model=replace(served.model, predict_fn=predict))

    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        assert latency_s >= 0
        self.batches.append((n_rows, error))


def submit_together(served: ServedModel | list[ServedModel], bodies: list[bytes],
                    observer: Any = None) -> list[tuple[int, dict[str, Any]]]:
    """Submit the requests in one event-loop pass, as if their sockets were ready together
    (each parsed for ``served``, or for its own model when given a list); return each
    request's (status, answer)."""
    answers: list[tuple[int, dict[str, Any]] | None] = [None] * len(bodies)
    models = served if isinstance(served, list) else [served] * len(bodies)

    async def scenario() -> None:
        batcher = MicroBatcher(observer)
        for i, (model, body) in enumerate(zip(models, bodies, strict=True)):
            def reply(status: int, text: bytes, i: int = i) -> None:
                answers[i] = (status, json.loads(text))
            batcher.submit(Pending(model, protocol.parse(body, "application/json",
                                                         model.plan), reply, 0.0))
        while not all(answers):
            await asyncio.sleep(0.001)

    asyncio.run(scenario())
    return [a for a in answers if a is not None]


def split_body(X: Any, rows: slice) -> bytes:
    part = X.iloc[rows]
    return json.dumps({"dataframe_split": {"columns": list(part.columns),
                                           "data": part.values.tolist()}}).encode()


@pytest.fixture(scope="module")
def forest(shelf: Shelf) -> tuple[ServedModel, Any]:
    saved = shelf.forest()
    return prepare(saved.path, "forest", "1"), saved


def test_requests_arriving_together_share_one_predict_call(forest) -> None:
    served, saved = forest
    recorder = Recorder()
    bodies = [split_body(saved.X, slice(i, i + 2)) for i in range(0, 10, 2)]
    answers = submit_together(recorder.wrap(served), bodies, recorder)
    assert recorder.calls == [10]
    assert recorder.batches == [(10, False)]
    for i, (status, answer) in enumerate(answers):
        assert status == 200
        assert answer["predictions"] == saved.predict(saved.X.iloc[2 * i:2 * i + 2]).tolist()


def test_a_bad_request_in_a_batch_is_answered_alone(forest) -> None:
    served, saved = forest
    recorder = Recorder()
    bad = json.loads(split_body(saved.X, slice(0, 1)))
    bad["dataframe_split"]["data"][0][4] = "n/a"
    bodies = [split_body(saved.X, slice(0, 1)), json.dumps(bad).encode(),
              split_body(saved.X, slice(1, 2))]
    answers = submit_together(recorder.wrap(served), bodies)
    assert [status for status, _ in answers] == [200, 400, 200]
    assert answers[1][1]["message"] == "column 'mean_smoothness', row 1: 'n/a' is not a number"
    assert recorder.calls == [2]
    assert answers[2][1]["predictions"] == saved.predict(saved.X.iloc[1:2]).tolist()


def test_a_model_failing_on_some_rows_fails_only_their_requests(shelf: Shelf) -> None:
    saved = shelf.fragile()
    served = prepare(saved.path, "fragile", "1")
    poison = saved.X.iloc[3:4].copy()
    poison["mean_radius"] = -1.0
    bodies = [split_body(saved.X, slice(0, 2)), split_body(poison, slice(0, 1)),
              split_body(saved.X, slice(2, 3))]
    recorder = Recorder()
    answers = submit_together(served, bodies, recorder)
    assert [status for status, _ in answers] == [200, 500, 200]
    assert "negative mean_radius" in answers[1][1]["message"]
    assert answers[0][1]["predictions"] == saved.predict(saved.X.iloc[0:2].to_numpy()).tolist()
    assert recorder.batches == [(4, True)]


def test_requests_parsed_before_a_swap_are_answered_by_their_own_model(shelf: Shelf) -> None:
    """A swap lands between two requests of the same event-loop pass: the first was parsed
    for the old model, the others for the new one."""
    recorder = Recorder()
    forest = shelf.forest()
    old = recorder.wrap(prepare(forest.path, "forest", "1"))
    new = recorder.wrap(prepare(shelf.constant(7).path, "constant", "2"))
    bodies = [split_body(forest.X, slice(0, 2)), split_body(forest.X, slice(2, 3)),
              split_body(forest.X, slice(3, 4))]
    answers = submit_together([old, new, new], bodies)
    assert answers[0] == (200, {"predictions": forest.predict(forest.X.iloc[:2]).tolist()})
    assert answers[1:] == [(200, {"predictions": [7]})] * 2
    assert recorder.calls == [2, 2]  # one call per model


def test_a_tensor_model_batches_rows_by_position(shelf: Shelf) -> None:
    saved = shelf.tensor()
    served = prepare(saved.path, None, None)
    bodies = [json.dumps({"instances": saved.X[i:i + 1].tolist()}).encode() for i in range(4)]
    answers = submit_together(served, bodies)
    assert [a["predictions"][0] for _, a in answers] == saved.predict(saved.X[:4]).tolist()


def test_a_model_without_input_example_is_served_all_the_same(shelf: Shelf, tmp_path) -> None:
    import shutil

    saved = shelf.forest()
    folder = tmp_path / "m"
    shutil.copytree(saved.path, folder)
    (folder / "serving_input_example.json").unlink()
    answers = submit_together(prepare(folder, None, None), [split_body(saved.X, slice(0, 2))])
    assert answers == [(200, {"predictions": saved.predict(saved.X.iloc[:2]).tolist()})]


def test_a_model_without_signature_gets_the_dataframe_mlflow_would_build(shelf: Shelf) -> None:
    saved = shelf.unsigned()
    served = prepare(saved.path, None, None)
    assert served.plan.mode == "frame"
    records = json.dumps({"dataframe_records": saved.X.iloc[:3].to_dict(orient="records")})
    answers = submit_together(served, [split_body(saved.X, slice(3, 5)), records.encode()])
    assert answers == [
        (200, {"predictions": saved.predict(saved.X.iloc[3:5]).tolist()}),
        (200, {"predictions": saved.predict(saved.X.iloc[:3]).tolist()})]


def test_scikit_learns_value_check_blames_the_request_even_behind_a_signature() -> None:
    """A float64 tensor signature admits 3.4e38; a forest casting to float32 refuses it. The
    fuzzer found this as a 500: the request can change it, so it is a 400."""
    from types import SimpleNamespace

    from mlops_control.serving.batcher import blames_the_input

    signed = SimpleNamespace(served=SimpleNamespace(plan=SimpleNamespace(mode="tensor")))
    too_big = ValueError("Input X contains infinity or a value too large for dtype('float32').")
    assert blames_the_input(signed, too_big)  # type: ignore[arg-type]
    assert not blames_the_input(signed, ValueError("model bug"))  # type: ignore[arg-type]

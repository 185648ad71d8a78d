"""What Batch Transform sends the shared image (issue 12.4): bodies far over the real-time
6 MiB limit, and line-split mini-batches without a header row, to a real serving process
started with the environment the transform job gives its container."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mlops_control import names
from mlops_control.remote import batch_transform
from tests.model_fixtures import Shelf
from tests.serving_process import Server, serving

pytestmark = pytest.mark.integration

BATCH_ENV = {names.ENV_SERVING_MAX_BODY_BYTES: str(batch_transform.CONTAINER_MAX_BODY_BYTES),
             names.ENV_SERVING_HEADERLESS_CSV: "1"}


@pytest.fixture(scope="module")
def batch_server(shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(shelf.forest().path, tmp_path_factory.mktemp("batch"), workers=1,
                 env=BATCH_ENV) as server:
        yield server


def big_csv(X: pd.DataFrame, size: int, header: bool = True) -> tuple[bytes, pd.DataFrame]:
    repeats = size // len(X.to_csv(index=False, header=False).encode()) + 1
    frame = pd.concat([X] * repeats, ignore_index=True)
    return frame.to_csv(index=False, header=header).encode(), frame


def test_a_20_mib_csv_is_scored_whole(batch_server: Server, shelf: Shelf) -> None:
    saved = shelf.forest()
    body, frame = big_csv(saved.X, 20 * 2 ** 20)
    assert len(body) > 20 * 2 ** 20
    status, answer = batch_server.post(body, "text/csv", timeout=120)
    assert status == 200, answer
    assert answer["predictions"] == saved.predict(frame).tolist()


def test_mini_batches_after_the_first_have_no_header(batch_server: Server,
                                                     shelf: Shelf) -> None:
    """SplitType=Line: only a file's first mini-batch holds its header line."""
    saved = shelf.forest()
    first, rest = saved.X.iloc[:7], saved.X.iloc[7:20]
    assert batch_server.post(first.to_csv(index=False).encode(), "text/csv") == (
        200, {"predictions": saved.predict(first).tolist()})
    assert batch_server.post(rest.to_csv(index=False, header=False).encode(), "text/csv") == (
        200, {"predictions": saved.predict(rest).tolist()})
    # A header-less row of the wrong width is still a 400 naming the problem.
    status, answer = batch_server.post(b"1.0,2.0\n", "text/csv")
    assert status == 400 and "row 1" in answer["message"], answer


def test_the_local_endpoint_keeps_sagemakers_real_time_limit(shelf: Shelf,
                                                             tmp_path_factory) -> None:
    saved = shelf.forest()
    body, _ = big_csv(saved.X, 7 * 2 ** 20)
    with serving(saved.path, tmp_path_factory.mktemp("limit"), workers=1) as server:
        status, answer = server.post(body, "text/csv", timeout=60)
        assert status == 413 and "MLOPS_SERVING_MAX_BODY_BYTES" in answer["message"]
        # and a header-less CSV is refused there: a row could be taken for a header
        status, answer = server.post(saved.X.iloc[:2].to_csv(index=False, header=False)
                                     .encode(), "text/csv")
        assert status == 400, answer


def test_csv_read_back(shelf: Shelf) -> None:
    """The helper writes what pandas reads back (guards the test itself)."""
    body, frame = big_csv(shelf.forest().X.iloc[:3], 10_000)
    assert np.allclose(pd.read_csv(io.BytesIO(body)).values, frame.values)

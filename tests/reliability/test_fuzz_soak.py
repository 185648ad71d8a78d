"""The fuzz tests again, with ten times their ``make test`` budget (``make test-soak``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = ["test_fuzz_events.py", "test_fuzz_scoring_protocol.py", "test_fuzz_receiver.py",
           "test_fuzz_scoring_http.py", "test_fuzz_lambdas.py"]


@pytest.mark.soak
@pytest.mark.timeout(3300)  # the suite-wide 600 s is for one test; this is five modules' worth
def test_the_fuzz_tests_pass_with_ten_times_their_budget():
    env = {**os.environ, "MLOPS_FUZZ_SCALE": "10"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not soak",
         *(str(REPO / "tests" / "reliability" / m) for m in MODULES)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

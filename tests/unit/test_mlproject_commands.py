"""MLproject commands split exactly as bash splits them (MLflow runs them with ``bash -c``)."""

from __future__ import annotations

import subprocess

import pytest

from mlops_control import mlproject

COMMANDS = [
    "python train.py --alpha 0.5 \\\n    --l1-ratio 0.1",
    "python train.py \\\n  --alpha '0.5' \\\n  --name \"a b\"\n",
    "python train.py --quote 'it'\"'\"'s' --esc a\\ b --dq \"x\\\"y\\\\z\"",
    "python   train.py\t--tab 1",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_simple_commands_split_into_the_words_bash_passes(command):
    # printf receives exactly the words bash gives the program; compare with ours.
    shown = subprocess.run(["bash", "-c", "printf '%s\\0' " + command.split(" ", 1)[1]],
                           capture_output=True, text=True, check=True).stdout
    assert mlproject.shell_words(command) == ["python", *shown.split("\0")[:-1]]


@pytest.mark.parametrize("command", ["python a.py | tee log", "python a.py && echo ok",
                                     "FOO=1 python a.py", "python a.py $HOME", "python *.py"])
def test_commands_using_shell_syntax_are_left_to_bash(command):
    assert mlproject.shell_words(command) is None


@pytest.mark.parametrize(("command", "says"), [
    ("python train.py \\  \n  --alpha 1", "spaces after its closing backslash"),
    ("python train.py\n  --alpha 1", "does not end with a backslash"),
    ("python train.py \\ --alpha 1", "literal space, not a line continuation"),
])
def test_continuations_bash_would_break_are_problems(command, says):
    assert any(says in p for p in mlproject.command_problems(command))

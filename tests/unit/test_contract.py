"""The model contract: each way a project can break it gets one clear error naming the
project, the file and the problem — and test-project honours it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_control import contract
from mlops_control.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
MLPROJECT = """name: {name}
entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.5}}
    command: "python train.py --alpha {{alpha}}"
"""


def make_project(tmp_path: Path, data_py: str | None, name: str = "broken-project",
                 mlproject: str | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "MLproject").write_text(mlproject if mlproject is not None
                                      else MLPROJECT.format(name=name))
    (folder / "train.py").write_text("print('train')\n")
    if data_py is not None:
        (folder / "data.py").write_text(data_py)
    return folder


def refused(folder: Path) -> ContractError:
    with pytest.raises(ContractError) as err:
        contract.validate(folder)
    return err.value


def test_test_project_honours_the_contract_with_a_small_test_slice():
    valid = contract.validate(REPO / "projects" / "test-project")
    assert valid.name == "test-project"
    assert 0 < valid.test_rows <= 100
    assert len(valid.X_test) == len(valid.y_test)


def test_a_project_without_data_py_is_refused(tmp_path):
    error = refused(make_project(tmp_path, None))
    assert (error.project, error.file) == ("broken-project", "data.py")
    assert "missing" in error.problem
    assert str(error).startswith("project 'broken-project': data.py:")


def test_a_data_py_without_get_data_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "def load():\n    return [1], [1]\n"))
    assert error.problem == "has no get_data() function"


def test_a_get_data_that_takes_arguments_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "def get_data(path):\n    return [1], [1]\n"))
    assert "must take no arguments" in error.problem and "path" in error.problem


def test_a_get_data_that_raises_is_refused_with_the_exception_and_line(tmp_path):
    error = refused(make_project(
        tmp_path, "def get_data():\n    raise RuntimeError('warehouse unreachable')\n"))
    assert "RuntimeError: warehouse unreachable (data.py line 2)" in error.problem


def test_a_get_data_that_returns_no_pair_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "def get_data():\n    return [1, 2, 3]\n"))
    assert "must return a pair (X, y)" in error.problem and "3 items" in error.problem


def test_a_get_data_that_returns_a_single_object_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "def get_data():\n    return None\n"))
    assert "returned NoneType" in error.problem


def test_x_and_y_of_different_lengths_are_refused(tmp_path):
    error = refused(make_project(tmp_path, "def get_data():\n    return [[1], [2]], [1]\n"))
    assert "X with 2 rows but y with 1" in error.problem


def test_a_data_py_that_does_not_import_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "import not_a_module_anyone_has\n"))
    assert "cannot be imported" in error.problem and "ModuleNotFoundError" in error.problem


def test_a_project_without_mlproject_is_refused(tmp_path):
    folder = make_project(tmp_path, "def get_data():\n    return [1], [1]\n")
    (folder / "MLproject").unlink()
    error = refused(folder)
    assert error.file == "MLproject" and "missing" in error.problem


@pytest.mark.parametrize("text, problem", [
    ("name: [unclosed", "not valid YAML"),
    ("name: broken-project\n", "no entry_points"),
    ("entry_points:\n  other:\n    command: x\n", "no 'main' entry point"),
    ("entry_points:\n  main:\n    parameters:\n      a: {type: tensor}\n    command: x {a}\n",
     "has type 'tensor'"),
    ("entry_points:\n  main:\n    command: python train.py {missing}\n", "not a declared parameter"),
    ("name: another-name\nentry_points:\n  main:\n    command: x\n", "declares name 'another-name'"),
    ("python_env: python_env.yaml\nentry_points:\n  main:\n    command: x\n", "which is missing"),
])
def test_an_invalid_mlproject_is_refused_naming_the_problem(tmp_path, text, problem):
    error = refused(make_project(tmp_path, "def get_data():\n    return [1], [1]\n",
                                 mlproject=text))
    assert error.file == "MLproject" and problem in error.problem


def test_a_project_name_that_cannot_become_an_endpoint_is_refused(tmp_path):
    error = refused(make_project(tmp_path, "def get_data():\n    return [1], [1]\n",
                                 name="Bad_Name"))
    assert "lowercase" in error.problem


def test_get_data_sees_test_env_true_during_validation(tmp_path):
    folder = make_project(tmp_path, (
        "import os\n"
        "def get_data():\n"
        "    n = 3 if os.environ.get('TEST_ENV') == 'True' else 1000\n"
        "    return list(range(n)), list(range(n))\n"))
    assert contract.validate(folder).test_rows == 3


def test_a_copy_of_test_project_in_another_folder_must_carry_its_own_name(tmp_path):
    shutil.copytree(REPO / "projects" / "test-project", tmp_path / "copy-project")
    error = refused(tmp_path / "copy-project")
    assert "declares name 'test-project'" in error.problem

"""The local port book on a real ``ports.json``: what a user finds in it and is told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_control.errors import ControlCentreError
from mlops_control.ports import PortBook

BASE = 5050


def write_book(path: Path, projects: list[str], stages: list[str] | None = None) -> Path:
    path.write_text(json.dumps({"projects": projects,
                                "stages": stages or ["production", "staging"]}))
    return path


def test_the_placeholder_an_old_make_up_booked_holds_no_block_of_ports(tmp_path: Path) -> None:
    # What `make up` wrote before 13.9: the banner booked '<project>' ahead of every project.
    file = write_book(tmp_path / "ports.json", ["<project>", "alpha", "beta"])
    book = PortBook(file, base=BASE)
    assert book.projects() == ["alpha", "beta"]
    assert book.describe(["production", "staging"]) == (
        "alpha: production on :5050, staging on :5051; "
        "beta: production on :5060, staging on :5061")
    # Booking a new project rewrites the file without the placeholder; the others stay put.
    assert book.port("gamma", "production") == 5070
    assert json.loads(file.read_text())["projects"] == ["alpha", "beta", "gamma"]
    assert [book.port(p, "staging") for p in ("alpha", "beta", "gamma")] == [5051, 5061, 5071]
    assert PortBook(file, base=BASE).describe(["production"]) == (
        "alpha: production on :5050; beta: production on :5060; gamma: production on :5070")


def test_a_book_holding_only_the_placeholder_promises_the_first_block(tmp_path: Path) -> None:
    book = PortBook(write_book(tmp_path / "ports.json", ["<project>"]), base=BASE)
    assert book.describe(["production", "staging"]) == (
        "first project deployed: production on :5050, staging on :5051")
    assert book.port("test-project", "production") == 5050


def test_a_name_that_is_no_project_name_gets_no_port(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json", base=BASE)
    with pytest.raises(ValueError, match="'<project>' is not a project name"):
        book.port("<project>", "production")
    assert not (tmp_path / "ports.json").exists()
    assert book.port("test-project", "production") == 5050


def test_configured_stages_each_get_their_own_port_and_booked_ones_keep_theirs(
        tmp_path: Path) -> None:
    # 'shadow' was used before; 'canary' and 'blue' are newly configured.
    file = write_book(tmp_path / "ports.json", ["alpha"], ["production", "staging", "shadow"])
    book = PortBook(file, base=BASE)
    stages = ["production", "blue", "canary", "shadow", "staging"]
    banner = book.describe(stages)  # before booking: where booking will put them
    assert banner == ("alpha: production on :5050, blue on :5053, canary on :5054, "
                      "shadow on :5052, staging on :5051")
    book.book_stages({"canary", "staging", "blue", "production", "shadow"})
    assert book.describe(stages) == banner
    assert [book.port("alpha", s) for s in stages] == [5050, 5053, 5054, 5052, 5051]
    assert [book.port("beta", s) for s in stages] == [5060, 5063, 5064, 5062, 5061]


def test_more_stages_than_a_block_holds_are_refused_before_anything_serves(
        tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json", base=BASE)
    with pytest.raises(ControlCentreError, match=r"MLOPS_STAGES names 11 stages .*at most 10"):
        book.book_stages(["production", *(f"s{i}" for i in range(10))])
    assert not (tmp_path / "ports.json").exists()


def test_ten_configured_stages_fit_taking_the_ports_of_stages_no_longer_used(
        tmp_path: Path) -> None:
    """Only configured stages count: staging and an old 'canary' hold offsets, but ten
    configured stages still fit, each on its own port, in the block."""
    file = write_book(tmp_path / "ports.json", ["alpha"], ["production", "staging", "canary"])
    stages = ["production", *(f"s{i}" for i in range(9))]
    book = PortBook(file, base=BASE)
    book.book_stages(stages)
    ports = [book.port("alpha", s) for s in stages]
    assert sorted(ports) == list(range(5050, 5060)) and ports[0] == 5050
    assert set(json.loads(file.read_text())["stages"]) == set(stages)


def test_a_stage_that_still_serves_keeps_its_port(tmp_path: Path) -> None:
    file = write_book(tmp_path / "ports.json", ["alpha"], ["production", "staging", "canary"])
    stages = ["production", *(f"s{i}" for i in range(8))]
    book = PortBook(file, base=BASE)
    book.book_stages(stages, serving={"canary"})
    assert book.port("alpha", "canary") == 5052 and book.port("alpha", "production") == 5050
    assert sorted(book.port("alpha", s) for s in [*stages, "canary"]) == list(range(5050, 5060))
    # Nine configured stages and canary serving fill the block: a tenth has no port left.
    with pytest.raises(ControlCentreError, match=r"no port left for stage 's8'.*canary still "
                                                 r"serve"):
        book.book_stages([*stages, "s8"], serving={"canary"})

"""Errors a user sees. Each names what is wrong and, where it helps, what to do next."""

from __future__ import annotations


class ControlCentreError(Exception):
    """Base class: an expected failure with a message fit to print as it is."""


class ContractError(ControlCentreError):
    """A project breaks the model contract. Nothing is trained or registered."""

    def __init__(self, project: str, file: str, problem: str) -> None:
        self.project = project
        self.file = file
        self.problem = problem
        super().__init__(f"project {project!r}: {file}: {problem}")


class ContractProblems(ContractError):
    """Several contract problems, reported together so one run of validate shows them all."""

    def __init__(self, project: str, problems: list[ContractError]) -> None:
        self.problems = problems
        ControlCentreError.__init__(self, f"project {project!r}: {len(problems)} problems:\n"
                                    + "\n".join(f"  - {p.file}: {p.problem}" for p in problems))
        self.project, self.file = project, problems[0].file
        self.problem = "; ".join(p.problem for p in problems)


class SchemaError(ControlCentreError):
    """Input does not match a model's signature (a missing column, a wrong type, a bad row)."""


class RegistryError(ControlCentreError):
    """The MLflow server refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None, error_code: str | None = None):
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class NotFound(RegistryError):
    """The registry has no such model, version or artifact."""


class EventError(ControlCentreError):
    """An incoming event was rejected. ``status`` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)

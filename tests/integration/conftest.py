"""Fixtures of the serving and batch tests: the model shelf."""

from tests.model_fixtures import shelf  # noqa: F401 - a fixture, found by name

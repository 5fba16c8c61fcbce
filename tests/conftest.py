"""Shared fixtures: real servers on loopback, started once per test session (see tests/fixtures/)."""

pytest_plugins = [
    "tests.fixtures.label_studio",
    "tests.fixtures.browser",
    "tests.fixtures.s3",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.postgres",
]

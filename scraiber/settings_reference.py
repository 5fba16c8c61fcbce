"""The settings reference (``docs/settings.md``), generated from the one settings object.

    python -m scraiber.settings_reference > docs/settings.md

One row per field of :class:`scraiber.settings.Settings`: its environment variable(s) (the
field's ``validation_alias`` choices, first one preferred), its default and its ``description``.
Variables that libraries read themselves, not the settings object, are a hand-written second table
(:data:`LIBRARY_VARIABLES`). ``tests/test_deployment.py`` checks that ``docs/settings.md`` equals
:func:`settings_markdown`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from scraiber.settings import Settings

REGENERATE = "python -m scraiber.settings_reference > docs/settings.md"

# (variables, default, meaning): read by a library (MLflow), not by the settings object
LIBRARY_VARIABLES: tuple[tuple[str, str, str], ...] = (
    (
        "`MLFLOW_S3_ENDPOINT_URL`",
        "—",
        "read by MLflow itself: S3 endpoint (SeaweedFS, MinIO) for the artefacts of an MLflow server; "
        "set for the backend and the MLflow server in `docker-compose.yml`",
    ),
    (
        "`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`",
        "—",
        "read by MLflow's client: basic auth of an MLflow server that requires it "
        "(e.g. in the `scraiber-mlflow` Modal secret)",
    ),
)


def _variables(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return []


def _is_secret(field: FieldInfo) -> bool:
    return "SecretStr" in str(field.annotation) or field.annotation is SecretStr


def _default(field: FieldInfo) -> str:
    if _is_secret(field):
        return "—"
    value: Any = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined or value in ([], (), ""):
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path):
        value = value.as_posix()
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _meaning(field: FieldInfo) -> str:
    text = _cell(field.description or "")
    return f"{text}; secret, never logged" if text and _is_secret(field) else text


def settings_rows() -> list[tuple[str, str, str]]:
    """(variables, default, meaning) of every field of the settings object, in declaration order."""
    rows = []
    for field in Settings.model_fields.values():
        names = _variables(field)
        variables = " or ".join(f"`{name}`" for name in names)
        rows.append((variables, _default(field), _meaning(field)))
    return rows


def _table(rows: list[tuple[str, str, str]] | tuple[tuple[str, str, str], ...]) -> list[str]:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| {variables} | {default} | {meaning} |" for variables, default, meaning in rows]
    return lines


def settings_markdown() -> str:
    """The whole settings reference page as Markdown (``docs/settings.md``)."""
    lines = [
        f"<!-- Generated from scraiber/settings.py by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "# Settings reference",
        "",
        "One settings object (`scraiber/settings.py`: `Settings`) reads these environment variables, or a",
        "`.env` file in the working directory. Build it once at an entry point and pass it down; modules never",
        "read the environment themselves. Secrets are never logged. Where a variable has two names, the first",
        "name listed that is set wins. A default of — means unset: the meaning says what happens then.",
        "",
        *_table(settings_rows()),
        "",
        "## Read by libraries",
        "",
        "These variables are not read by the settings object but by a library the backend uses; set them in the",
        "same environment. The standard AWS variables above are also what boto3's default credential chain reads.",
        "",
        *_table(LIBRARY_VARIABLES),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown(), end="")

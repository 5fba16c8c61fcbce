"""The one settings object of scrAiber, read from the environment (and ``.env``).

Build it once at an entry point (``Settings()``) and pass it down; modules never read
the environment themselves. The rooms never import this module: each states the fields it
reads as a protocol in its ``settings_protocols.py``, and mypy checks that this object has
them. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from active_learning.settings_protocols import DEFAULT_CHAMPION_ALIAS, DEFAULT_MODEL_NAME
from scraiber.local_stack import running_stack


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting of scrAiber. ``docs/settings.md`` is generated from these fields (aliases, defaults,
    descriptions) by ``python -m scraiber.settings_reference``; every field needs a description."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Label Studio
    label_studio_url: str = Field(
        "http://127.0.0.1:8080",
        validation_alias=_env("LABEL_STUDIO_URL"),
        description="Label Studio as the backend reaches it; images are fetched only from this host",
    )
    label_studio_api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("LABEL_STUDIO_API_KEY"),
        description="legacy token or Personal Access Token of a Label Studio user who can read the projects",
    )

    # The backend's HTTP service
    host: str = Field("127.0.0.1", validation_alias=_env("SCRAIBER_HOST"), description="address the backend listens on")
    port: int = Field(9090, validation_alias=_env("SCRAIBER_PORT"), description="port the backend listens on")
    demo: bool = Field(
        False,
        validation_alias=_env("SCRAIBER_DEMO"),
        description="local demo: no basic auth (set by `scraiber up`; never on a network)",
    )
    basic_auth_user: str | None = Field(
        None,
        validation_alias=_env("SCRAIBER_BASIC_AUTH_USER"),
        description="HTTP basic auth user Label Studio must send (required unless demo)",
    )
    basic_auth_pass: SecretStr | None = Field(
        None,
        validation_alias=_env("SCRAIBER_BASIC_AUTH_PASS"),
        description="HTTP basic auth password Label Studio must send (required unless demo)",
    )
    max_request_bytes: int = Field(
        64 * 2**20,
        validation_alias=_env("SCRAIBER_MAX_REQUEST_BYTES"),
        description="larger request bodies get HTTP 413 (default 64 MiB)",
    )
    web_workers: int = Field(2, validation_alias=_env("SCRAIBER_WEB_WORKERS"), description="gunicorn worker processes")
    header_timeout: float = Field(
        10.0,
        validation_alias=_env("SCRAIBER_HEADER_TIMEOUT"),
        description="seconds a client has to send its request headers (idle sockets cannot hold the backend)",
    )
    predict_memory_mb: int | None = Field(
        None,
        validation_alias=_env("SCRAIBER_PREDICT_MEMORY_MB"),
        description="memory (MB) `/predict` may use, all web workers together; larger images go through the section "
        "path or are refused per task; default: half the memory limit (cgroup or RAM)",
    )
    worker_stuck_seconds: float = Field(
        300.0,
        validation_alias=_env("SCRAIBER_WORKER_STUCK_SECONDS"),
        description="a harvest worker silent this long (seconds) is reported stuck in `/health` and restarted",
    )
    threads: int = Field(
        0, validation_alias=_env("SCRAIBER_THREADS"), description="torch threads per process; 0 = all cores"
    )

    # Local state
    data_dir: Path = Field(
        Path(".scraiber"),
        validation_alias=_env("SCRAIBER_DATA_DIR"),
        description="local state: event log, MLflow, artefacts, Label Studio data of `scraiber up`",
    )
    catalogue: Path | None = Field(
        None,
        validation_alias=_env("SCRAIBER_CATALOGUE"),
        description="your mineral catalogue TOML; default: the built-in one",
    )
    event_log_url: str | None = Field(
        None,
        validation_alias=_env("SCRAIBER_EVENT_LOG_URL"),
        description="event log database (`postgresql://...` for a team); default: SQLite in the data dir",
    )

    # Images
    max_image_pixels: int = Field(
        2**30 + 2**28,
        validation_alias=_env("SCRAIBER_MAX_IMAGE_PIXELS"),
        description="decompression-bomb limit for any image read, in pixels (default 2^30 + 2^28, 1.34 GPix)",
    )
    allowed_local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("SCRAIBER_ALLOWED_LOCAL_ROOTS"),
        description="comma-separated folders local-files tasks may point into",
    )
    local_files_document_root: Path | None = Field(
        None,
        validation_alias=_env("LOCAL_FILES_DOCUMENT_ROOT"),
        description="Label Studio's local-files root (same value as Label Studio's)",
    )
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("SCRAIBER_ALLOWED_BUCKETS"),
        description="comma-separated S3 buckets `s3://` tasks may point into",
    )

    # S3 (standard AWS variables, used as boto3 uses them: ml_backend.s3; endpoint for SeaweedFS/MinIO)
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3 endpoint, e.g. SeaweedFS or MinIO; default: AWS",
    )
    aws_access_key_id: str | None = Field(
        None,
        validation_alias=_env("AWS_ACCESS_KEY_ID"),
        description="S3 access key; unset: boto3's default chain (profile, SSO, container or instance role)",
    )
    aws_secret_access_key: SecretStr | None = Field(
        None,
        validation_alias=_env("AWS_SECRET_ACCESS_KEY"),
        description="S3 secret key, used with `AWS_ACCESS_KEY_ID`; unset: boto3's default chain",
    )
    aws_session_token: SecretStr | None = Field(
        None,
        validation_alias=_env("AWS_SESSION_TOKEN"),
        description="token of temporary credentials (STS), used with the keys above",
    )
    aws_profile: str | None = Field(
        None,
        validation_alias=_env("AWS_PROFILE"),
        description="named profile of `~/.aws/config` and `~/.aws/credentials`; default: boto3's",
    )
    aws_region: str | None = Field(
        None,
        validation_alias=_env("AWS_DEFAULT_REGION", "AWS_REGION"),
        description="S3 region; default: the profile's region, else boto3's",
    )
    artefact_uri: str | None = Field(
        None,
        validation_alias=_env("SCRAIBER_ARTEFACT_URI"),
        description="artefact store: a folder or `s3://bucket/prefix`; default: a folder in the data dir",
    )

    # MLflow
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_URI"),
        description="MLflow tracking (an `http://` MLflow server for a team); default: SQLite in the data dir",
    )
    model_name: str = Field(
        DEFAULT_MODEL_NAME, validation_alias=_env("SCRAIBER_MODEL_NAME"), description="registered model name in MLflow"
    )
    champion_alias: str = Field(
        DEFAULT_CHAMPION_ALIAS,
        validation_alias=_env("SCRAIBER_CHAMPION_ALIAS"),
        description="alias of the model the backend serves",
    )
    model_poll_seconds: float = Field(
        30.0,
        validation_alias=_env("SCRAIBER_MODEL_POLL_SECONDS"),
        description="how often (seconds) the backend checks whether the alias moved",
    )

    # Active learning
    retrain_every: int = Field(
        0,
        validation_alias=_env("SCRAIBER_RETRAIN_EVERY"),
        description="retrain after this many new implicit labels (0: only on request)",
    )
    retrain_on_start_training: bool = Field(
        True,
        validation_alias=_env("SCRAIBER_RETRAIN_ON_START_TRAINING"),
        description="retrain when Label Studio sends START_TRAINING",
    )
    retrain_config: Path | None = Field(
        None,
        validation_alias=_env("SCRAIBER_RETRAIN_CONFIG"),
        description="training config TOML used by retraining cycles (`active_learning/training/minerals.toml` shows every field); default: the built-in fine-tuning",
    )
    train_on: str = Field(
        "local",
        validation_alias=_env("SCRAIBER_TRAIN_ON"),
        description="where retraining cycles train: `local` or `modal` (needs an S3 artefact store)",
    )
    reconcile_seconds: float = Field(
        300.0,
        validation_alias=_env("SCRAIBER_RECONCILE_SECONDS"),
        description="how often (seconds) the backend asks Label Studio for annotations it missed",
    )
    query_strategy: str = Field(
        "entropy",
        validation_alias=_env("SCRAIBER_QUERY_STRATEGY"),
        description="how tasks are scored for active learning (see the user guide's scores and selection)",
    )
    fast_learner: bool = Field(
        True,
        validation_alias=_env("SCRAIBER_FAST_LEARNER"),
        description="per-project pixel classifier on the FCN, refitted after every submission (see the domain-shift page)",
    )
    pseudonym_key: SecretStr | None = Field(
        None,
        validation_alias=_env("SCRAIBER_PSEUDONYM_KEY"),
        description="secret that turns annotator ids into stable pseudonyms; default: a random key kept in the data dir",
    )

    # Training on Modal
    modal_gpu: str = Field(
        "H100", validation_alias=_env("SCRAIBER_MODAL_GPU"), description="GPU type of `scraiber train --on modal`"
    )

    # Publishing datasets (scraiber publish)
    zenodo_token: SecretStr | None = Field(
        None,
        validation_alias=_env("ZENODO_TOKEN"),
        description="Zenodo personal access token for `scraiber publish` (scopes deposit:write, deposit:actions)",
    )
    zenodo_url: str | None = Field(
        None,
        validation_alias=_env("SCRAIBER_ZENODO_URL"),
        description="Zenodo deposition API root; default https://zenodo.org/api (`--sandbox` uses sandbox.zenodo.org)",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, values: dict) -> dict:
        for name in (
            "SCRAIBER_ALLOWED_LOCAL_ROOTS",
            "SCRAIBER_ALLOWED_BUCKETS",
            "allowed_local_roots",
            "allowed_buckets",
        ):
            raw = values.get(name)
            if isinstance(raw, str):
                values[name] = [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]
        return values

    @model_validator(mode="before")
    @classmethod
    def _local_stack(cls, values: dict) -> dict:
        """With no Label Studio configured, the one ``scraiber up`` runs on this data dir, in demo mode
        (:mod:`scraiber.local_stack`): commands run beside ``up`` need no variables."""
        if not isinstance(values, dict):
            return values

        def given(*names: str) -> bool:
            return any(values.get(name) not in (None, "") for name in names)

        if given("LABEL_STUDIO_URL", "label_studio_url", "LABEL_STUDIO_API_KEY", "label_studio_api_key"):
            return values
        data_dir = values.get("SCRAIBER_DATA_DIR") or values.get("data_dir") or cls.model_fields["data_dir"].default
        stack = running_stack(Path(data_dir))
        key = stack.api_key() if stack is not None else None
        if key is None:
            return values
        assert stack is not None  # a key came from it
        found: dict[str, str | bool] = {"label_studio_url": stack.label_studio_url, "label_studio_api_key": key}
        if not given("SCRAIBER_DEMO", "demo"):
            found["demo"] = True
        return {**values, **found}

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.port <= 0 or self.port > 65535:
            raise ValueError(f"SCRAIBER_PORT must be 1-65535, got {self.port}")
        if (self.basic_auth_user is None) != (self.basic_auth_pass is None):
            raise ValueError("set both SCRAIBER_BASIC_AUTH_USER and SCRAIBER_BASIC_AUTH_PASS, or neither")
        if self.train_on not in ("local", "modal"):
            raise ValueError(f"SCRAIBER_TRAIN_ON must be 'local' or 'modal', got {self.train_on!r}")
        if self.max_image_pixels <= 0 or self.max_request_bytes <= 0:
            raise ValueError("SCRAIBER_MAX_IMAGE_PIXELS and SCRAIBER_MAX_REQUEST_BYTES must be positive")
        if self.header_timeout <= 0 or self.worker_stuck_seconds <= 0 or (self.predict_memory_mb or 1) <= 0:
            raise ValueError(
                "SCRAIBER_HEADER_TIMEOUT, SCRAIBER_WORKER_STUCK_SECONDS and SCRAIBER_PREDICT_MEMORY_MB must be positive"
            )
        return self

    # Derived locations: embedded defaults under data_dir
    @property
    def resolved_event_log_url(self) -> str:
        """Event log database URL (SQLite under ``data_dir`` unless configured)."""
        return self.event_log_url or f"sqlite:///{(self.data_dir / 'events.sqlite').resolve()}"

    @property
    def resolved_artefact_uri(self) -> str:
        """Artefact store root: ``s3://bucket/prefix`` or a local folder under ``data_dir``."""
        return self.artefact_uri or str((self.data_dir / "artefacts").resolve())

    @property
    def resolved_mlflow_uri(self) -> str:
        """MLflow tracking URI (a local SQLite file under ``data_dir`` unless configured)."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def auth_required(self) -> bool:
        """Basic auth is required everywhere except the local demo."""
        return not self.demo


def settings_from(ctx: click.Context) -> Settings:
    """The settings object of this invocation, built once from the environment.

    Tests may put a ready ``Settings`` into ``obj["settings"]`` of the root context.
    """
    root = ctx.find_root()
    root.ensure_object(dict)
    if "settings" not in root.obj:
        root.obj["settings"] = Settings()
    return root.obj["settings"]

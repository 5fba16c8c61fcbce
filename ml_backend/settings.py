"""The one settings object of scrAiber, read from the environment (and ``.env``).

Build it once at an entry point (``Settings()``) and pass it down; modules never read
the environment themselves. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ml_backend.local_stack import running_stack


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting of scrAiber; environment variable names in ``docs``/README."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Label Studio
    label_studio_url: str = Field("http://127.0.0.1:8080", validation_alias=_env("LABEL_STUDIO_URL"))
    label_studio_api_key: SecretStr | None = Field(None, validation_alias=_env("LABEL_STUDIO_API_KEY"))

    # The backend's HTTP service
    host: str = Field("127.0.0.1", validation_alias=_env("SCRAIBER_HOST"))
    port: int = Field(9090, validation_alias=_env("SCRAIBER_PORT"))
    demo: bool = Field(False, validation_alias=_env("SCRAIBER_DEMO"))
    basic_auth_user: str | None = Field(None, validation_alias=_env("SCRAIBER_BASIC_AUTH_USER"))
    basic_auth_pass: SecretStr | None = Field(None, validation_alias=_env("SCRAIBER_BASIC_AUTH_PASS"))
    max_request_bytes: int = Field(64 * 2**20, validation_alias=_env("SCRAIBER_MAX_REQUEST_BYTES"))
    web_workers: int = Field(2, validation_alias=_env("SCRAIBER_WEB_WORKERS"))
    header_timeout: float = Field(
        10.0,
        validation_alias=_env("SCRAIBER_HEADER_TIMEOUT"),
        description="seconds a client has to send a request's headers",
    )
    predict_memory_mb: int | None = Field(
        None,
        validation_alias=_env("SCRAIBER_PREDICT_MEMORY_MB"),
        description="memory for predictions, all web workers together; default: half the memory limit (cgroup or RAM)",
    )
    worker_stuck_seconds: float = Field(
        300.0,
        validation_alias=_env("SCRAIBER_WORKER_STUCK_SECONDS"),
        description="a harvest worker silent this long is reported stuck and restarted",
    )
    threads: int = Field(0, validation_alias=_env("SCRAIBER_THREADS"), description="torch threads; 0 = all cores")

    # Local state
    data_dir: Path = Field(Path(".scraiber"), validation_alias=_env("SCRAIBER_DATA_DIR"))
    catalogue: Path | None = Field(None, validation_alias=_env("SCRAIBER_CATALOGUE"))
    event_log_url: str | None = Field(None, validation_alias=_env("SCRAIBER_EVENT_LOG_URL"))

    # Images
    max_image_pixels: int = Field(2**30 + 2**28, validation_alias=_env("SCRAIBER_MAX_IMAGE_PIXELS"))
    allowed_local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SCRAIBER_ALLOWED_LOCAL_ROOTS")
    )
    local_files_document_root: Path | None = Field(None, validation_alias=_env("LOCAL_FILES_DOCUMENT_ROOT"))
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SCRAIBER_ALLOWED_BUCKETS")
    )

    # S3 (standard AWS variables, used as boto3 uses them: ml_backend.s3; endpoint for SeaweedFS/MinIO)
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    aws_access_key_id: str | None = Field(None, validation_alias=_env("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("AWS_SECRET_ACCESS_KEY"))
    aws_session_token: SecretStr | None = Field(
        None, validation_alias=_env("AWS_SESSION_TOKEN"), description="temporary credentials (STS) go with their keys"
    )
    aws_profile: str | None = Field(
        None, validation_alias=_env("AWS_PROFILE"), description="named profile of ~/.aws/config and ~/.aws/credentials"
    )
    aws_region: str | None = Field(
        None,
        validation_alias=_env("AWS_DEFAULT_REGION", "AWS_REGION"),
        description="default: the profile's region, else boto3's",
    )
    artefact_uri: str | None = Field(None, validation_alias=_env("SCRAIBER_ARTEFACT_URI"))

    # MLflow
    mlflow_tracking_uri: str | None = Field(None, validation_alias=_env("MLFLOW_TRACKING_URI"))
    model_name: str = Field("scraiber-minerals", validation_alias=_env("SCRAIBER_MODEL_NAME"))
    champion_alias: str = Field("champion", validation_alias=_env("SCRAIBER_CHAMPION_ALIAS"))
    model_poll_seconds: float = Field(30.0, validation_alias=_env("SCRAIBER_MODEL_POLL_SECONDS"))

    # Active learning
    retrain_every: int = Field(0, validation_alias=_env("SCRAIBER_RETRAIN_EVERY"))
    retrain_on_start_training: bool = Field(True, validation_alias=_env("SCRAIBER_RETRAIN_ON_START_TRAINING"))
    retrain_config: Path | None = Field(None, validation_alias=_env("SCRAIBER_RETRAIN_CONFIG"))
    train_on: str = Field("local", validation_alias=_env("SCRAIBER_TRAIN_ON"))
    reconcile_seconds: float = Field(300.0, validation_alias=_env("SCRAIBER_RECONCILE_SECONDS"))
    query_strategy: str = Field("entropy", validation_alias=_env("SCRAIBER_QUERY_STRATEGY"))
    fast_learner: bool = Field(
        True,
        validation_alias=_env("SCRAIBER_FAST_LEARNER"),
        description="per-project pixel classifier on the FCN, refitted after every submission",
    )
    pseudonym_key: SecretStr | None = Field(None, validation_alias=_env("SCRAIBER_PSEUDONYM_KEY"))

    # Training on Modal
    modal_gpu: str = Field("H100", validation_alias=_env("SCRAIBER_MODAL_GPU"))

    # Publishing datasets (scraiber publish)
    zenodo_token: SecretStr | None = Field(
        None,
        validation_alias=_env("ZENODO_TOKEN"),
        description="personal access token (scopes deposit:write, deposit:actions)",
    )
    zenodo_url: str | None = Field(
        None,
        validation_alias=_env("SCRAIBER_ZENODO_URL"),
        description="deposition API root; default https://zenodo.org/api (--sandbox: sandbox.zenodo.org)",
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
        (:mod:`ml_backend.local_stack`): commands run beside ``up`` need no variables."""
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
        found = {"label_studio_url": stack.label_studio_url, "label_studio_api_key": key}
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

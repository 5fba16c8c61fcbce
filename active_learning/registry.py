"""The MLflow model registry of scrAiber: register versions, promote the champion, fetch weights.

Rule for the champion alias: a version replaces the champion only if, on the *same*
validation set (same fingerprint), it is not worse. With per-tile mIoUs of at least 15
champion tiles recorded for both, "not worse" is a test (:mod:`active_learning.champion`:
the one-sided 95 % lower bound of the paired per-tile difference above -0.01, sign flips);
with fewer, the validation mIoUs are compared as point estimates and the reason says so.
Results are version tags (``scraiber.val_miou``, ``scraiber.val_per_tile``,
``scraiber.validation_set``), so every decision can be checked later in the MLflow UI. The backend polls :meth:`ModelRegistry.champion_version`
(one cheap request) and downloads a new champion when it changes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from active_learning.champion import FORGETTING_TOLERANCE, ChampionRule, decide
from active_learning.model_files import CONFIG_FILE, WEIGHTS_FILE, weights_folder
from active_learning.settings_protocols import TrackingSettings
from active_learning.tracking import MODEL_ARTIFACT_PATH, TAG_PREFIX, mlflow_client

TAG_VAL_MIOU = f"{TAG_PREFIX}val_miou"
TAG_VALIDATION_SET = f"{TAG_PREFIX}validation_set"
TAG_DECISION = f"{TAG_PREFIX}promotion"
TAG_VAL_SYNTHETIC = f"{TAG_PREFIX}val_miou_synthetic"
TAG_VAL_PER_TILE = f"{TAG_PREFIX}val_per_tile"
_TAG_LIMIT = 5000  # characters MLflow keeps in a tag value


class ModelNotFoundError(KeyError):
    """No such registered model, version or alias."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelVersionRef(NamedTuple):
    """A registered model version: its number, the run that logged it (None: registered without one), and its tags."""

    version: int
    run_id: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class PromotionDecision:
    """What :meth:`ModelRegistry.promote_if_not_worse` decided, and why.

    Attributes:
        version: The candidate version.
        promoted: True if the alias now points at ``version``.
        reason: One sentence for logs and the version's ``scraiber.promotion`` tag.
        champion_version: The champion before the decision (None if there was none).
        needs_reevaluation: True when champion and candidate were validated on different
            sets (or the champion has no recorded result): evaluate both on one set, record
            it with :meth:`ModelRegistry.record_validation`, then ask again.
    """

    version: int
    promoted: bool
    reason: str
    champion_version: int | None
    needs_reevaluation: bool = False


def _missing(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST"


class ModelRegistry:
    """One registered model and its champion alias.

    Args:
        client: MLflow client (tracking and registry URI set).
        name: Registered model name.
        alias: Alias that marks the model the backend serves.
        cache_dir: Where :meth:`download_model` keeps downloaded versions.
    """

    def __init__(self, client: MlflowClient, name: str, alias: str, cache_dir: Path) -> None:
        self.client = client
        self.name = name
        self.alias = alias
        self.cache_dir = Path(cache_dir)

    @classmethod
    def from_settings(cls, settings: TrackingSettings) -> ModelRegistry:
        """The registry for ``settings.model_name`` / ``champion_alias``, caching under ``data_dir/models``."""
        return cls(mlflow_client(settings), settings.model_name, settings.champion_alias, settings.data_dir / "models")

    def __repr__(self) -> str:
        return f"ModelRegistry({self.name!r}, alias={self.alias!r}, uri={self.client.tracking_uri!r})"

    def register(self, run_id: str, artifact_path: str = MODEL_ARTIFACT_PATH) -> int:
        """Register the model logged at ``runs:/<run_id>/<artifact_path>`` as a new version; return its number."""
        try:
            self.client.create_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"runs:/{run_id}/{artifact_path}"
        return int(self.client.create_model_version(self.name, source, run_id=run_id).version)

    def _model_version(self, version: int) -> ModelVersion:
        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException as exc:
            if _missing(exc):
                raise ModelNotFoundError(f"model {self.name!r} has no version {version}") from exc
            raise

    def version(self, version: int) -> ModelVersionRef:
        """The registered version ``version``.

        Raises:
            ModelNotFoundError: if the model or version does not exist.
        """
        found = self._model_version(version)
        return ModelVersionRef(int(found.version), found.run_id, dict(found.tags))

    def _aliases(self) -> dict[str, str]:
        try:
            return dict(self.client.get_registered_model(self.name).aliases)
        except MlflowException as exc:
            if _missing(exc):
                return {}
            raise

    def champion_version(self) -> int | None:
        """The version the champion alias points at, or None; one request, cheap enough to poll."""
        version = self._aliases().get(self.alias)
        return int(version) if version is not None else None

    def champion(self) -> ModelVersionRef | None:
        """The champion version (number, run id, tags), or None before the first promotion."""
        version = self.champion_version()
        return self.version(version) if version is not None else None

    def record_validation(
        self, version: int, val_miou: float, validation_set_id: str, synthetic_miou: float | None = None,
        per_tile: dict[str, float] | None = None,
    ) -> None:  # fmt: skip
        """Store a validation result on a version (tags), e.g. after re-evaluating the champion.

        ``synthetic_miou``, when the score is not the synthetic mIoU itself, feeds the forgetting guard;
        ``per_tile`` (mIoU per champion tile) feeds the champion test (dropped if too long for a tag).

        Raises:
            ValueError: if ``val_miou`` is not in [0, 1] or the set id is empty.
            ModelNotFoundError: if the version does not exist.
        """
        if not math.isfinite(val_miou) or not 0.0 <= val_miou <= 1.0:
            raise ValueError(f"validation mIoU must be a number in [0, 1], got {val_miou}")
        if not validation_set_id:
            raise ValueError("validation_set_id must name the validation set (e.g. its fingerprint)")
        self.version(version)
        self.client.set_model_version_tag(self.name, str(version), TAG_VAL_MIOU, repr(float(val_miou)))
        self.client.set_model_version_tag(self.name, str(version), TAG_VALIDATION_SET, validation_set_id)
        if synthetic_miou is not None and math.isfinite(synthetic_miou):
            self.client.set_model_version_tag(self.name, str(version), TAG_VAL_SYNTHETIC, repr(float(synthetic_miou)))
        if per_tile:
            text = json.dumps({k: round(float(v), 5) for k, v in sorted(per_tile.items())}, separators=(",", ":"))
            if len(text) <= _TAG_LIMIT:
                self.client.set_model_version_tag(self.name, str(version), TAG_VAL_PER_TILE, text)

    def promote_if_not_worse(
        self, version: int, val_miou: float, validation_set_id: str, synthetic_miou: float | None = None,
        per_tile: dict[str, float] | None = None, rule: ChampionRule = ChampionRule(),
    ) -> PromotionDecision:  # fmt: skip
        """Record ``version``'s validation result and move the champion alias to it if it is not worse.

        The first version is always promoted. Otherwise the champion's recorded result
        must be on the same validation set; then, when both have ``per_tile`` results on at
        least ``rule.min_tiles`` common tiles, the champion test decides
        (:func:`active_learning.champion.decide`); otherwise ``val_miou >= champion's`` promotes.
        Either way not if both recorded a ``synthetic_miou`` and the candidate's is more than
        :data:`FORGETTING_TOLERANCE` below the champion's (it forgot what it knew).
        A different (or unrecorded) set promotes nothing and asks for re-evaluation.
        Concurrent promotions of one model are not serialised; run one trainer per model.
        """
        self.record_validation(version, val_miou, validation_set_id, synthetic_miou, per_tile)
        current = self.champion()
        needs_reevaluation = False
        if current is None:
            promoted, reason = True, f"v{version} is the first champion (val mIoU {val_miou:.4f})"
        elif current.version == version:
            promoted, reason = True, f"v{version} is already the champion; result recorded (val mIoU {val_miou:.4f})"
        elif current.tags.get(TAG_VALIDATION_SET) != validation_set_id or TAG_VAL_MIOU not in current.tags:
            promoted, needs_reevaluation = False, True
            reason = (
                f"v{version} was validated on set {validation_set_id[:12]} but champion v{current.version} on "
                f"{current.tags.get(TAG_VALIDATION_SET, 'no recorded set')[:12]}: mIoUs are not comparable; "
                "re-evaluate both on one set, record it, and promote again"
            )
        else:
            best = float(current.tags[TAG_VAL_MIOU])
            promoted = val_miou >= best
            verdict = "not worse than" if promoted else "worse than"
            reason = f"v{version} val mIoU {val_miou:.4f} is {verdict} champion v{current.version}'s {best:.4f}"
            test = decide(json.loads(current.tags.get(TAG_VAL_PER_TILE, "{}")), per_tile or {}, rule)
            if test.tested:
                promoted = test.promote
                reason = f"v{version} against champion v{current.version}: {test.reason}"
            else:
                reason += f" (point estimates: {test.reason})"
            known = current.tags.get(TAG_VAL_SYNTHETIC)
            if promoted and synthetic_miou is not None and known is not None:
                if synthetic_miou < float(known) - FORGETTING_TOLERANCE:
                    promoted = False
                    reason += (
                        f", but its synthetic mIoU {synthetic_miou:.4f} is more than {FORGETTING_TOLERANCE} below "
                        f"the champion's {float(known):.4f}: it forgets what it knew"
                    )
        if promoted:
            self.client.set_registered_model_alias(self.name, self.alias, str(version))
        self.client.set_model_version_tag(self.name, str(version), TAG_DECISION, reason)
        return PromotionDecision(
            version=version,
            promoted=promoted,
            reason=reason,
            champion_version=current.version if current is not None else None,
            needs_reevaluation=needs_reevaluation,
        )

    def resolve(self, ref: int | str | None = None) -> int:
        """A version number from a number, an alias name, or None (the champion alias).

        Raises:
            ModelNotFoundError: if the alias is not set.
        """
        if isinstance(ref, int):
            return ref
        alias = ref or self.alias
        version = self._aliases().get(alias)
        if version is None:
            raise ModelNotFoundError(f"model {self.name!r} has no version with alias {alias!r}")
        return int(version)

    def download_model(self, ref: int | str | None = None) -> Path:
        """Download a version's model and return the folder with ``weights.safetensors`` + ``config.json``.

        Versions are immutable, so a folder already in the cache is returned as is. The
        download goes to a temporary folder renamed into place, so an interrupted
        download never looks complete. Read it with :func:`active_learning.model_files.load_model_dir`.
        For an MLflow pyfunc model that folder is its ``artifacts/fcn`` (:func:`weights_folder`).

        Args:
            ref: Version number, alias name, or None for the champion.
        """
        found = self._model_version(self.resolve(ref))
        # the run id in the name keeps a cache from outliving a reset registry that reuses numbers
        final = self.cache_dir / self.name / f"v{found.version}-{found.run_id}"
        if (weights_folder(final) / WEIGHTS_FILE).is_file() and (weights_folder(final) / CONFIG_FILE).is_file():
            return weights_folder(final)
        prefix = f"runs:/{found.run_id}/"
        assert found.source is not None  # MLflow requires a source for every model version
        if not found.source.startswith(prefix):
            raise ValueError(f"model {self.name!r} v{found.version} has source {found.source!r}, not a run's artefact")
        assert found.run_id is not None  # the source lies under runs:/<run_id>/, so the version has a run
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".v{found.version}-"))
        try:
            folder = self.client.download_artifacts(found.run_id, found.source[len(prefix) :], str(tmp))
            try:
                os.replace(folder, final)
            except OSError:  # another process put it there first
                if not (weights_folder(final) / WEIGHTS_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return weights_folder(final)

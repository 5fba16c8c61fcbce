"""FCN training on a Modal GPU: the same ``run_training`` as local training, data and artefacts in S3.

``scraiber train --on modal`` calls :func:`run_training_on_modal`, which runs
:func:`train_remote` in an ephemeral Modal app. The remote function rebuilds the
:class:`~active_learning.training.TrainConfig` from its dict, builds ``Settings`` from the
environment that the Modal Secrets provide (MLflow URI and credentials, S3 endpoint and
keys, ``SCRAIBER_ARTEFACT_URI``), reads any harvested label sets from the S3 artefact
store, calls :func:`active_learning.training.run_training` (which logs to and registers in
the same MLflow as local runs), and writes the best model to the artefact store, from
where the local side fetches it.

Before the first run (once per Modal workspace)::

    modal token new
    modal secret create scraiber-s3 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
        AWS_ENDPOINT_URL_S3=https://... SCRAIBER_ARTEFACT_URI=s3://bucket/scraiber
    modal secret create scraiber-mlflow MLFLOW_TRACKING_URI=https://... \\
        MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=... MLFLOW_S3_ENDPOINT_URL=https://...

Declaring the app (importing this module) needs neither a token nor the network.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import modal

if TYPE_CHECKING:
    from active_learning.store import ArtefactStore
    from active_learning.training import HarvestedSample, TrainConfig, TrainingResult, ValidationSample
    from scraiber.settings import Settings

APP_NAME = "scraiber-train"
DEFAULT_GPU = "H100"  # any Modal GPU name: "A10G", "L40S", "A100-80GB", ...; SCRAIBER_MODAL_GPU chooses per run
SECRETS = ("scraiber-s3", "scraiber-mlflow")
TIMEOUT_S = 4 * 3600
PYTHON_VERSION = "3.11"
#: torch CUDA build; the versions are the pins of .ci/constraints.txt.
TORCH_PACKAGES = ("torch==2.14.1", "torchvision==0.29.1")
TORCH_INDEX_URL = "https://download.pytorch.org/whl/cu130"
#: What training imports, with the project's pins (pyproject.toml); no Label Studio, no web server.
TRAINING_PACKAGES = (
    "numpy>=1.26",
    "scipy>=1.11",
    "scikit-image>=0.22",
    "scikit-learn>=1.4",
    "tifffile>=2024.1",
    "imagecodecs>=2024.1",
    "pillow>=10",
    "pandas>=2.0",
    "tqdm>=4.66",
    "click>=8.0",
    "pydantic>=2.5",
    "pydantic-settings>=2.1",
    "safetensors>=0.4",
    "segmentation-models-pytorch==0.6.0",
    "timm",
    "mlflow>=3.17,<3.18",
    "boto3>=1.34",
    "periodictable>=1.7",
)
#: Packages the image carries: the three rooms training uses and the composition package (its settings).
SOURCES = ("label_config", "ml_backend", "active_learning", "scraiber")
MODELS_PREFIX = "models/modal"

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install(*TORCH_PACKAGES, index_url=TORCH_INDEX_URL)
    .pip_install(*TRAINING_PACKAGES)
    .add_local_python_source(*SOURCES, ignore=["**/*.pyc", "**/demo/**"])  # .py and package data (catalogue TOML)
)
app = modal.App(APP_NAME, image=image)


@app.function(gpu=DEFAULT_GPU, secrets=[modal.Secret.from_name(name) for name in SECRETS], timeout=TIMEOUT_S)
def train_remote(
    config: dict[str, Any],
    harvested: list[str] | None = None,
    validation: list[str] | None = None,
    init_key: str | None = None,
) -> dict[str, Any]:
    """Train on the Modal GPU with the local entry point; the model goes to the artefact store.

    Args:
        config: ``TrainConfig.to_dict()``.
        harvested: Artefact-store keys of harvested label sets (``.npz`` with arrays
            ``image``, ``label`` (uint8, 255 = none), ``weight`` (float32), each ``(H, W)``
            or ``(N, H, W)``).
        validation: Keys of held-out expert labels (``.npz`` with ``image`` and ``label``),
            added to the validation set.
        init_key: Key of a model folder (``weights.safetensors`` + ``config.json``) to
            fine-tune from.

    Returns:
        The training summary (JSON-ready) with ``model_key``: the store key of the model
        folder (``weights.safetensors`` + ``config.json``).
    """
    from active_learning.store import open_store
    from active_learning.training import HarvestedSample, TrainConfig, ValidationSample, run_training
    from scraiber.settings import Settings

    settings = Settings()  # the entry point of the remote process: environment from the Secrets
    store = open_store(settings.resolved_artefact_uri, settings)
    samples = []
    for key in harvested or []:
        arrays = store.get_arrays(key)
        for image, label, weight in zip(*(_stack(arrays[name]) for name in ("image", "label", "weight"))):
            samples.append(HarvestedSample(image, label, weight))
    extra = []
    for key in validation or []:
        arrays = store.get_arrays(key)
        extra.append(ValidationSample(key, arrays["image"], arrays["label"]))
    if init_key is not None:
        initial = Path(tempfile.mkdtemp(prefix="scraiber-init-"))
        for name in ("weights.safetensors", "config.json"):
            store.get_file(f"{init_key}/{name}", initial / name)
        config = {**config, "init_from": str(initial)}
    out = Path(tempfile.mkdtemp(prefix="scraiber-model-"))
    result = run_training(
        TrainConfig.from_dict(config), settings, out=out, harvested=samples or None, validation_extra=extra,
        progress=False,
    )  # fmt: skip
    model_key = f"{MODELS_PREFIX}/{time.strftime('%Y%m%d-%H%M%S')}-{result.model_config.arch}"
    store.put_file(f"{model_key}/weights.safetensors", result.model_path)  # out= gives NAME.safetensors + NAME.json
    store.put_file(f"{model_key}/config.json", result.model_path.with_suffix(".json"))
    return {
        "model_key": model_key,
        "model_config": result.model_config.to_dict(),
        "val_iou": result.val_iou,
        "val_miou": result.val_miou,
        "val_fingerprint": result.val_fingerprint,
        "best_step": result.best_step,
        "steps_done": result.steps_done,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        "run_id": result.run_id,
        "model_version": result.model_version,
        "promoted": result.promoted,
        "promotion_reason": result.promotion_reason,
    }


def _stack(array: Any) -> Any:
    """One image ``(H, W)`` as a stack of one ``(1, H, W)``."""
    return array[None] if array.ndim == 2 else array


def run_training_on_modal(
    config: TrainConfig,
    settings: Settings,
    *,
    gpu: str | None = None,
    harvested: list[str] | None = None,
    validation: list[str] | None = None,
    init_key: str | None = None,
) -> TrainingResult:
    """Run :func:`train_remote` in an ephemeral Modal app and fetch the model it wrote.

    Needs a Modal token (``modal token new``), the Secrets named in :data:`SECRETS`, and
    an S3 ``SCRAIBER_ARTEFACT_URI`` shared by this machine and the Secret.

    Args:
        config: The training config (sent as a dict).
        settings: Local settings: the artefact store to fetch the model from, the data
            folder to put it in, and ``SCRAIBER_MODAL_GPU``.
        gpu: Modal GPU type for this run (default ``settings.modal_gpu``).
        harvested: Artefact-store keys of harvested label sets (see :func:`train_remote`).
        validation: Artefact-store keys of held-out expert labels (see :func:`train_remote`).
        init_key: Artefact-store key of a model folder to fine-tune from.

    Raises:
        ValueError: when the artefact store is not in S3 (Modal cannot reach a local folder).
    """
    from active_learning.store import open_store
    from active_learning.training import TrainingResult
    from ml_backend.fcn import FCNConfig

    if not settings.resolved_artefact_uri.startswith("s3://"):
        raise ValueError("training on Modal needs SCRAIBER_ARTEFACT_URI=s3://BUCKET/PREFIX, reachable from Modal")
    function = train_remote.with_options(gpu=gpu or settings.modal_gpu)
    with app.run():
        summary = function.remote(config.to_dict(), harvested, validation, init_key)
    store = open_store(settings.resolved_artefact_uri, settings)
    local = settings.data_dir / summary["model_key"]
    for name in ("weights.safetensors", "config.json"):
        store.get_file(f"{summary['model_key']}/{name}", local / name)
    return TrainingResult(
        model_path=Path(local / "weights.safetensors"),
        model_config=FCNConfig.from_dict(summary["model_config"]),
        val_iou=summary["val_iou"],
        val_miou=summary["val_miou"],
        val_fingerprint=summary["val_fingerprint"],
        best_step=summary["best_step"],
        steps_done=summary["steps_done"],
        stopped_early=summary["stopped_early"],
        seconds=summary["seconds"],
        run_id=summary["run_id"],
        model_version=summary["model_version"],
        promoted=summary["promoted"],
        promotion_reason=summary["promotion_reason"],
    )


def modal_trainer(
    config: TrainConfig,
    settings: Settings,
    *,
    harvested: list[HarvestedSample],
    validation_extra: list[ValidationSample],
    store: ArtefactStore,
    **_: Any,
) -> Any:
    """``run_training`` on a Modal GPU: the samples and the initial model travel through the S3 store."""
    prefix = f"retrain/{time.strftime('%Y%m%d-%H%M%S')}"
    train_keys = []
    for i, sample in enumerate(harvested):
        train_keys.append(f"{prefix}/train-{i:05d}.npz")
        store.put_arrays(train_keys[-1], {"image": sample.image, "label": sample.label, "weight": sample.weight})
    val_keys = []
    for i, val_sample in enumerate(validation_extra):
        val_keys.append(f"{prefix}/val-{i:05d}.npz")
        store.put_arrays(val_keys[-1], {"image": val_sample.image, "label": val_sample.label})
    init_key = None
    if config.init_from:
        init_key = f"{prefix}/init"
        for name in ("weights.safetensors", "config.json"):
            store.put_file(f"{init_key}/{name}", Path(config.init_from) / name)
    return run_training_on_modal(
        config.replace(init_from=None, checkpoint_dir=None), settings,
        harvested=train_keys, validation=val_keys, init_key=init_key,
    )  # fmt: skip

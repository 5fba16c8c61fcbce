"""Which model a pre-annotation came from, and the model itself with a model card.

:class:`ModelLookup` turns the ``model_version`` Label Studio stores with each prediction
into provenance. Served FCNs are named by their weights (``fcn-`` + 12 hex digits of the
SHA-256 of the weights file, ``+fast-...`` behind a project's fast learner); the registry
version whose run logged those weights (run tag ``scraiber.weights_sha256``) gives the MLflow
model URI and run. Older predictions named ``<registered name>-v<N>`` are read too; weights
that are only the shipped FCN, or the unsupervised clustering, are named as such.

:func:`export_model` copies a registered version (an MLflow pyfunc model folder, see
:mod:`active_learning.mlflow_model`) into the package as ``model/`` and writes its model card
(``MODEL_CARD.md`` and ``model_card.json``): training data fingerprint, classes, the per-class
IoU measured and on which validation set, and known weaknesses.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from active_learning.fingerprints import fingerprint
from active_learning.model_files import PYFUNC_WEIGHTS
from active_learning.settings_protocols import DEFAULT_MODEL_NAME, TrackingSettings
from label_config import Catalogue

_REGISTERED = re.compile(r"^(?P<name>.+)-v(?P<number>\d+)(?P<fast>\+fast-.+)?$")
_SHIPPED = re.compile(r"^fcn-(?P<sha>[0-9a-f]{12})(?P<fast>\+fast-.+)?$")
#: Classes whose expected BSE brightness (backscatter coefficient) differs by less than this are
#: named in the model card as a likely confusion.
CLOSE_BRIGHTNESS = 0.01


@dataclass(frozen=True)
class ModelProvenance:
    """Where a prediction's model came from.

    Attributes:
        model_version: As Label Studio stored it with the prediction.
        kind: ``mlflow-registered``, ``shipped-fcn``, ``clustering``, ``none`` or ``unknown``
            (``+fast-learner`` appended when a project's fast learner refined it).
        model_uri: ``models:/NAME/N`` for a registered version, else empty.
        run_id: The MLflow run that logged it (empty when the registry was not reachable).
        description: One line for people.
    """

    model_version: str
    kind: str
    model_uri: str = ""
    run_id: str = ""
    description: str = ""


class ModelLookup:
    """``model_version`` -> :class:`ModelProvenance`, asking the MLflow registry at most once per version.

    Args:
        settings: MLflow URI and registered model name (only ``<that name>-v<N>`` is a registered
            version); None: the default name, no registry lookups.
        shipped: Shipped weights files (their SHA-256 prefix names ``fcn-...`` versions).
    """

    def __init__(self, settings: TrackingSettings | None, shipped: list[Path] | None = None) -> None:
        self.settings = settings
        self.model_name = settings.model_name if settings is not None else DEFAULT_MODEL_NAME
        self._shipped = shipped
        self._cache: dict[str, ModelProvenance] = {}
        self._client: Any = None

    def __call__(self, version: str | None) -> ModelProvenance:
        if not version:
            return ModelProvenance("", "none", description="no prediction: painted from scratch")
        if version not in self._cache:
            self._cache[version] = self._find(version)
        return self._cache[version]

    def _find(self, version: str) -> ModelProvenance:
        fast = " refined by the project's fast learner (per-project pixel classifier on the FCN's features)"
        if version.startswith("unsupervised"):
            return ModelProvenance(
                version, "clustering", description="unsupervised clustering of grey levels (no trained model)"
            )
        if (match := _REGISTERED.match(version)) and match.group(
            "name"
        ) == self.model_name:  # names before weights hashes
            registered: tuple[str, int, str] | None = (
                self.model_name,
                int(match.group("number")),
                self._run_id(self.model_name, int(match.group("number"))),
            )
            shipped = []
        elif match := _SHIPPED.match(version):
            registered = self._registered_by_sha(match.group("sha"))
            shipped = [p.name for p in self._shipped_files() if _sha256(p).startswith(match.group("sha"))]
        else:
            return ModelProvenance(version, "unknown", description="model version not known to this scrAiber")
        suffix = ("+fast-learner", fast) if match.group("fast") else ("", "")
        what = f"shipped FCN weights {shipped[0]}" if shipped else ""
        if registered is not None:
            name, number, run_id = registered
            what = f"registered MLflow model {name} version {number}" + (f" ({what})" if what else "")
            return ModelProvenance(
                version, "mlflow-registered" + suffix[0], f"models:/{name}/{number}", run_id, what + suffix[1]
            )
        if shipped:
            return ModelProvenance(version, "shipped-fcn" + suffix[0], description=what + suffix[1])
        return ModelProvenance(
            version, "unknown" + suffix[0], description="an FCN whose weights are in no registry reachable at export"
        )

    def _shipped_files(self) -> list[Path]:
        if self._shipped is None:
            from ml_backend.fcn.model_files import SHIPPED_DIR

            self._shipped = sorted(SHIPPED_DIR.glob("*.safetensors"))
        return self._shipped

    def _registry(self) -> Any:
        """An MLflow client, or None where no registry is configured or exists."""
        settings = self.settings
        if settings is None:
            return None
        uri = settings.resolved_mlflow_uri
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
            return None  # no local registry: do not create one
        if self._client is None:
            from active_learning.tracking import mlflow_client

            self._client = mlflow_client(settings)
        return self._client

    def _run_id(self, name: str, number: int) -> str:
        try:
            client = self._registry()
            return str(client.get_model_version(name, str(number)).run_id) if client is not None else ""
        except Exception:  # MLflow raises many types; an unreachable registry leaves the run unknown
            return ""

    def _registered_by_sha(self, prefix: str) -> tuple[str, int, str] | None:
        """(name, version, run id) of the oldest registered version whose weights' SHA-256 starts with ``prefix``."""
        from active_learning.tracking import WEIGHTS_SHA256_TAG

        try:
            client = self._registry()
            if client is None:
                return None
            versions = sorted(client.search_model_versions(f"name='{self.model_name}'"), key=lambda v: int(v.version))
            for found in versions:
                if client.get_run(found.run_id).data.tags.get(WEIGHTS_SHA256_TAG, "").startswith(prefix):
                    return self.model_name, int(found.version), str(found.run_id)
        except Exception:  # as in _run_id
            return None
        return None


_SHA_CACHE: dict[Path, str] = {}


def _sha256(path: Path) -> str:
    from tracking_analysis.datapackage import sha256_of

    if path not in _SHA_CACHE:
        _SHA_CACHE[path] = sha256_of(path)
    return _SHA_CACHE[path]


def _model_root(weights: Path) -> Path:
    """The MLflow model folder around a pyfunc model's weights folder (or the folder itself)."""
    parts = len(PYFUNC_WEIGHTS.parts)
    if weights.parts[-parts:] == PYFUNC_WEIGHTS.parts and (weights.parents[parts - 1] / "MLmodel").is_file():
        return weights.parents[parts - 1]
    return weights


def resolve_reference(ref: str, settings: TrackingSettings) -> tuple[str, str | None, int | None]:
    """(registered name, alias, version) of ``champion``, ``models:/NAME@ALIAS`` or ``models:/NAME/N``.

    Raises:
        ValueError: for another form.
    """
    if ref == "champion":
        return settings.model_name, settings.champion_alias, None
    match = re.match(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<number>\d+))$", ref)
    if not match:
        raise ValueError(f"--with-model takes champion, models:/NAME@ALIAS or models:/NAME/VERSION, got {ref!r}")
    number = match.group("number")
    return match.group("name"), match.group("alias"), int(number) if number else None


def export_model(ref: str, settings: TrackingSettings, catalogue: Catalogue, out: Path) -> dict[str, Any]:
    """Copy a registered model into ``out/model`` and write ``out/MODEL_CARD.md`` + ``out/model_card.json``.

    Returns:
        The model card (what ``model_card.json`` holds).

    Raises:
        ValueError: for a bad reference, or a model whose classes are not the catalogue's.
        active_learning.registry.ModelNotFoundError: for an unknown model, version or alias.
    """
    from active_learning.registry import ModelRegistry
    from active_learning.tracking import mlflow_client

    name, alias, number = resolve_reference(ref, settings)
    client = mlflow_client(settings)
    registry = ModelRegistry(client, name, alias or settings.champion_alias, settings.data_dir / "models")
    number = number if number is not None else registry.resolve(alias)
    found = registry.version(number)
    weights = registry.download_model(number)
    shutil.copytree(_model_root(weights), out / "model")
    config = json.loads((weights / "config.json").read_text(encoding="utf-8"))
    if list(config["classes"]) != list(catalogue.names):
        raise ValueError(f"model {name} v{number} predicts {config['classes']}, the labels use {catalogue.names}")
    assert found.run_id is not None  # download_model above accepts only versions logged by a run
    run = client.get_run(found.run_id)
    card = {
        "name": name,
        "version": number,
        "uri": f"models:/{name}/{number}",
        "alias": alias,
        "run_id": found.run_id,
        "mlflow_flavour": "python_function (models-from-code, weights safetensors)" if (out / "model" / "MLmodel").is_file()
        else "bare weights + config (logged before scrAiber wrote MLflow Models)",
        "architecture": {k: config.get(k) for k in ("arch", "smp_arch", "encoder", "options", "tile", "overlap", "percentiles")},
        "classes": list(config["classes"]),
        "input": "one raw 2-D grey BSE image as float32 (8- or 16-bit grey levels), any size (tiled)",
        "output": "uint8 (H, W) index of the most probable class (classes above, in order)",
        "training_data": _training_data(client, found.run_id, config.get("training") or {}),
        "evaluation": _evaluation(client, found.run_id, config.get("training") or {}, found.tags),
        "promotion": found.tags.get("scraiber.promotion", ""),
        "known_weaknesses": weaknesses(config, catalogue),
        "run_tags": {k: v for k, v in run.data.tags.items() if k.startswith("scraiber.")},
    }  # fmt: skip
    (out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(render_card(card), encoding="utf-8")
    return card


def _artifact_json(client: Any, run_id: str, path: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="scraiber-card-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # absent artefact: MLflow raises per store type
            return None
        return json.loads(Path(local).read_text(encoding="utf-8"))


def _training_data(client: Any, run_id: str, training: dict[str, Any]) -> dict[str, Any]:
    tags = client.get_run(run_id).data.tags
    config = _artifact_json(client, run_id, "config.json")
    data: dict[str, Any] = {
        "synthetic_only": training.get("synthetic_only"),
        "steps": training.get("steps"),
        "seed": training.get("seed"),
    }
    if "scraiber.data.train" in tags:
        data["fingerprint"] = tags["scraiber.data.train"]
        data["fingerprint_of"] = "the training samples (scraiber.data.train)"
    elif config is not None:
        data["fingerprint"] = fingerprint({"config.json": json.dumps(config, sort_keys=True)})
        data["fingerprint_of"] = ("the training config (it fixes the synthetic sections: generator, seed, families); "
                                  "harvested labels trained on are not fingerprinted by the run")  # fmt: skip
        data["config"] = config
    else:
        data["fingerprint"] = None
        data["fingerprint_of"] = "not recorded (the run logged no training config)"
    return data


def _evaluation(client: Any, run_id: str, training: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    val = _artifact_json(client, run_id, "data/val.json") or {}
    samples = list(val.get("samples") or [])
    expert = [s for s in samples if str(s).startswith("expert-")]
    return {
        "class_iou": training.get("val_iou"),
        "miou": training.get("val_miou"),
        "best_step": training.get("best_step"),
        "validation_set": training.get("val_fingerprint"),
        "validation_samples": {"synthetic": len(samples) - len(expert), "held_out_expert_labels": len(expert)}
        if samples
        else None,
        "registry_score": {
            "val_miou": tags.get("scraiber.val_miou"),
            "validation_set": tags.get("scraiber.validation_set"),
        },
    }


def weaknesses(config: dict[str, Any], catalogue: Catalogue) -> list[str]:
    """Known weaknesses, from the model's own record and the catalogue's physics."""
    training = config.get("training") or {}
    notes = []
    if training.get("synthetic_only"):
        notes.append("Trained on synthetic thin sections only: its quality on real BSE images is not measured.")
    iou = {k: v for k, v in (training.get("val_iou") or {}).items() if v is not None}
    if iou:
        worst = sorted(iou, key=iou.__getitem__)[:2]
        notes.append(
            "Weakest classes on the validation set: " + ", ".join(f"{k} (IoU {iou[k]:.2f})" for k in worst) + "."
        )
    order = catalogue.brightness_order()
    for a, b in zip(order, order[1:]):
        first, second = catalogue.classes[a], catalogue.classes[b]
        if abs(first.eta - second.eta) < CLOSE_BRIGHTNESS:
            notes.append(f"{first.name} and {second.name} have close BSE brightness (backscatter coefficient "
                         f"{first.eta:.4f} vs {second.eta:.4f}): expect them to be confused; texture decides.")  # fmt: skip
    notes.append("Pixel size is not an input: sizes of crystals far outside the training range may be mis-segmented.")
    return notes


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown."""
    evaluation, training = card["evaluation"], card["training_data"]
    rows = "\n".join(
        f"| {name} | {'–' if value is None else f'{value:.3f}'} |"
        for name, value in (evaluation["class_iou"] or {}).items()
    )
    samples = evaluation["validation_samples"]
    composition = (f"{samples['synthetic']} synthetic sections, {samples['held_out_expert_labels']} held-out expert labels"
                   if samples else "its composition was not logged with the run")  # fmt: skip
    fingerprint = (
        f"`{training['fingerprint']}` ({training['fingerprint_of']})"
        if training["fingerprint"]
        else training["fingerprint_of"]
    )
    return f"""# Model card: {card["name"]} version {card["version"]}

- MLflow: `{card["uri"]}` (run `{card["run_id"]}`), {card["mlflow_flavour"]}
- Load: `mlflow.pyfunc.load_model("model")` (this folder) or `mlflow.pyfunc.load_model("{card["uri"]}")` with the
  tracking server set; `model.predict(image.astype("float32"))` returns the class mask.
- Architecture: {card["architecture"]["arch"]} ({card["architecture"]["smp_arch"]}, encoder {card["architecture"]["encoder"]}),
  tiles of {card["architecture"]["tile"]} px with {card["architecture"]["overlap"]} px overlap
- Input: {card["input"]}
- Output: {card["output"]}
- Classes: {", ".join(f"{i} {c}" for i, c in enumerate(card["classes"]))}

## Training data

- Fingerprint: {fingerprint}
- Synthetic sections only: {training["synthetic_only"]}; steps {training["steps"]}, seed {training["seed"]}

## Measured quality

Per-class IoU at the best checkpoint (step {evaluation["best_step"]}) on validation set `{evaluation["validation_set"]}`
({composition});
mean IoU {evaluation["miou"]}.

| class | IoU |
| --- | --- |
{rows}

Registry record: validation mIoU {evaluation["registry_score"]["val_miou"]} on set `{evaluation["registry_score"]["validation_set"]}`.
Promotion: {card["promotion"] or "–"}

## Known weaknesses

{chr(10).join(f"- {note}" for note in card["known_weaknesses"])}
"""

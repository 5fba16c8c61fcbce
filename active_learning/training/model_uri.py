"""Resolve MLflow model URIs to local model folders, for ``scraiber segment --model-uri``.

Registered as resolvers of the ``scraiber.model_uris`` entry point group (schemes
``models`` and ``runs``), so ``ml_backend`` can use them without importing this room.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from active_learning.model_files import WEIGHTS_FILE, weights_folder
from active_learning.registry import ModelRegistry
from active_learning.settings_protocols import TrackingSettings
from active_learning.tracking import mlflow_client


def resolve_mlflow_uri(uri: str, settings: TrackingSettings | None) -> Path:
    """Download (once, cached under ``data_dir/models``) the model folder of an MLflow URI.

    Accepts ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME`` (the champion
    alias of the settings) and ``runs:/RUN_ID/PATH``.

    Raises:
        ValueError: for a malformed URI or missing settings.
        active_learning.registry.ModelNotFoundError: for an unknown model, version or alias.
    """
    if settings is None:
        raise ValueError(f"resolving {uri!r} needs the settings (MLflow tracking URI)")
    client = mlflow_client(settings)
    cache = settings.data_dir / "models"
    if uri.startswith("models:/"):
        body = uri[len("models:/") :].strip("/")
        name, _, alias = body.partition("@")
        name, _, version = name.partition("/")
        if not name or (alias and version):
            raise ValueError(f"malformed model URI {uri!r}; use models:/NAME@ALIAS or models:/NAME/VERSION")
        registry = ModelRegistry(client, name, settings.champion_alias, cache)
        return registry.download_model(int(version) if version.isdigit() else (alias or None))
    if uri.startswith("runs:/"):
        run_id, _, artifact = uri[len("runs:/") :].strip("/").partition("/")
        if not run_id or not artifact:
            raise ValueError(f"malformed run URI {uri!r}; use runs:/RUN_ID/ARTIFACT_PATH")
        final = cache / "runs" / run_id / artifact
        if (weights_folder(final) / WEIGHTS_FILE).is_file():
            return weights_folder(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".download-"))
        try:
            os.replace(client.download_artifacts(run_id, artifact, str(tmp)), final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return weights_folder(final)
    raise ValueError(f"not an MLflow model URI: {uri!r}")

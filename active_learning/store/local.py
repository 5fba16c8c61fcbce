"""Artefact store in a local folder, with atomic writes (temporary file + ``os.replace``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from active_learning.store.base import (
    ArtefactNotFoundError,
    ArtefactStore,
    atomic_file,
    validate_key,
    validate_metadata,
)

_METADATA_DIR = ".metadata"


class LocalArtefactStore(ArtefactStore):
    """Artefacts as files under ``root`` (created on the first write).

    Every write goes to a dot file beside the target and is renamed over it, so a
    killed process leaves the old artefact or the new one, never a part; dot files are
    not keys and never listed. Metadata lives in ``root/.metadata/<key>.json``.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalArtefactStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _metadata_path(self, key: str) -> Path:
        path = self.root.joinpath(_METADATA_DIR, *validate_key(key).split("/"))
        return path.with_name(f"{path.name}.json")

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:  # noqa: D102
        path, metadata_path = self._path(key), self._metadata_path(key)
        checked = validate_metadata(metadata)
        if checked:
            with atomic_file(metadata_path) as handle:
                handle.write(json.dumps(checked, sort_keys=True).encode("utf-8"))
        else:
            metadata_path.unlink(missing_ok=True)
        with atomic_file(path) as handle:
            handle.write(bytes(data))

    def get_bytes(self, key: str) -> bytes:  # noqa: D102
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtefactNotFoundError(f"no artefact {self.uri(key)}") from exc

    def get_metadata(self, key: str) -> dict[str, str]:  # noqa: D102
        if not self.exists(key):
            raise ArtefactNotFoundError(f"no artefact {self.uri(key)}")
        try:
            return json.loads(self._metadata_path(key).read_text("utf-8"))
        except FileNotFoundError:
            return {}

    def put_file(self, key: str, path: str | os.PathLike) -> None:  # noqa: D102
        target = self._path(key)
        self._metadata_path(key).unlink(missing_ok=True)
        with open(path, "rb") as source, atomic_file(target) as handle:
            shutil.copyfileobj(source, handle, 1 << 20)

    def get_file(self, key: str, dest: str | os.PathLike) -> Path:  # noqa: D102
        dest = Path(dest)
        try:
            source = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtefactNotFoundError(f"no artefact {self.uri(key)}") from exc
        with source, atomic_file(dest) as handle:
            shutil.copyfileobj(source, handle, 1 << 20)
        return dest

    def exists(self, key: str) -> bool:  # noqa: D102
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:  # noqa: D102
        validate_key(prefix, prefix=True)
        folder = self.root.joinpath(*prefix.split("/")[:-1])
        keys = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:  # noqa: D102
        if self.exists(key):
            self._path(key).unlink(missing_ok=True)
        self._metadata_path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:  # noqa: D102
        return self._path(key).as_uri()

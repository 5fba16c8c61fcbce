"""Ground-truth class maps of Label Studio tasks, for measuring pre-annotations and corrections.

A folder of ``{key}_classes.png`` class-index masks as written by
``ml_backend.synthetic.write_section`` (or ``scraiber synth``). A task's key is ``data.truth``
if present, else the entry for its id or image file name in an optional JSON mapping file,
else the stem of its image file name (without Label Studio's 8-hex upload prefix).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from PIL import Image

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class TruthLookup:
    """Ground-truth class maps of tasks, from a folder of ``{key}_classes.png`` files.

    Args:
        folder: Where the masks are.
        mapping: Optional JSON file ``{task id or image file name: key or file name}``.

    Raises:
        OSError: if the folder or mapping file cannot be read.
    """

    def __init__(self, folder: str | Path, mapping: str | Path | None = None) -> None:
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise OSError(f"ground-truth folder {folder} does not exist")
        self.mapping: dict[str, str] = {}
        if mapping is not None:
            try:
                raw = json.loads(Path(mapping).read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise OSError(f"ground-truth mapping {mapping} is not valid JSON ({exc})") from None
            if not isinstance(raw, dict):
                raise OSError(f"ground-truth mapping {mapping} must be a JSON object of key -> truth")
            self.mapping = {str(k): str(v) for k, v in raw.items()}

    def key(self, task: dict[str, Any], value_key: str = "image") -> str:
        """The truth key of a task (see the module docstring for the order of lookups)."""
        data = task.get("data") or {}
        if data.get("truth"):
            return str(data["truth"])
        name = _file_name(str(data.get(value_key, "")))
        for candidate in (str(task.get("id")), name):
            if candidate in self.mapping:
                return self.mapping[candidate]
        return _UPLOAD_PREFIX.sub("", PurePosixPath(name).stem)

    def has(self, task: dict[str, Any], value_key: str = "image") -> bool:
        """Whether the folder holds the task's mask (e.g. not for a real field among synthetic ones)."""
        key = self.key(task, value_key)
        path = (self.folder / (key if key.endswith(".png") else f"{key}_classes.png")).resolve()
        return self.folder in path.parents and path.is_file()

    def classes(self, task: dict[str, Any], value_key: str = "image") -> np.ndarray:
        """The task's (H, W) uint8 class-index mask.

        Raises:
            OSError: if the mask is missing, unreadable, or the key points outside the folder.
        """
        key = self.key(task, value_key)
        name = key if key.endswith(".png") else f"{key}_classes.png"
        path = (self.folder / name).resolve()
        if self.folder not in path.parents:
            raise OSError(f"ground-truth key {key!r} of task {task.get('id')} points outside {self.folder}")
        if not path.is_file():
            raise OSError(f"no ground truth for task {task.get('id')}: {path} does not exist")
        with Image.open(path) as image:
            mask = np.asarray(image)
        if mask.ndim != 2:
            raise OSError(f"ground truth {path} is not a single-channel class-index image")
        return mask.astype(np.uint8)


def _file_name(url: str) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query).get("d")  # local-files: /data/local-files/?d=path
    return PurePosixPath(unquote(query[0] if query else parts.path)).name

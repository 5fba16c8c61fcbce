"""Where the tiles of an ingested section go, and how their Label Studio tasks are created.

* :class:`UploadTarget`: files uploaded to Label Studio (``/data/upload/...``) the way the
  UI does it, then each task's data is completed with the tile metadata (``PATCH``).
* :class:`ImportTarget`: files written to an artefact store (a folder under Label
  Studio's ``LOCAL_FILES_DOCUMENT_ROOT``, or an S3 bucket) and tasks imported as JSON
  that point at them (``/data/local-files/?d=...`` or ``s3://...``).
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from active_learning.store import ArtefactStore
from ml_backend.label_studio import LabelStudioClient

_IMPORT_BATCH = 200  # tasks per import request


class TileTarget(ABC):
    """Stores tile images and creates one Label Studio task per tile."""

    @abstractmethod
    def put(self, key: str, png: bytes) -> str | None:
        """Store one tile as ``key`` (a relative path); its URL for the task data, or None
        when only Label Studio will know it (uploads)."""

    @abstractmethod
    def create_tasks(self, client: LabelStudioClient, project_id: int, value_key: str, tasks: list[dict]) -> list[int]:
        """Create the tasks (``{"data": ...}`` in the order of :meth:`put`); their ids in order.

        ``value_key`` is the task data key of the image (``image`` for ``$image``).
        """

    def close(self) -> None:  # noqa: B027 - optional: most targets hold nothing to free
        """Free what the target holds (temporary files)."""


class UploadTarget(TileTarget):
    """Tiles uploaded into Label Studio's own storage; metadata added to each created task."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="scraiber-upload-")
        self._paths: list[Path] = []

    def put(self, key: str, png: bytes) -> None:  # noqa: D102
        path = Path(self._folder.name) / f"{len(self._paths):06d}" / Path(key).name
        path.parent.mkdir()
        path.write_bytes(png)
        self._paths.append(path)
        return None

    def create_tasks(self, client: LabelStudioClient, project_id: int, value_key: str, tasks: list[dict]) -> list[int]:  # noqa: D102
        ids = client.upload_files(project_id, self._paths)
        if len(ids) != len(tasks):
            raise ValueError(f"Label Studio created {len(ids)} tasks for {len(tasks)} uploaded tiles")
        urls = {task["id"]: task["data"].get(value_key) for task in client.list_tasks(project_id)}
        for task_id, task in zip(ids, tasks):
            url = urls.get(task_id)
            if not url:
                raise ValueError(
                    f"task {task_id} created from an upload has no data.{value_key}; "
                    "the project's labelling config must have exactly one image"
                )
            client.update_task(task_id, {**task["data"], value_key: url})
        return ids

    def close(self) -> None:  # noqa: D102
        self._folder.cleanup()


class ImportTarget(TileTarget):
    """Tiles written to an artefact store; tasks imported as JSON with the tiles' URLs.

    Args:
        store: Where the tiles go (a local folder or an S3 bucket and prefix).
        url_of: The URL Label Studio understands for a stored key.
        prepare: Called once before the import (e.g. to connect local-files storage).
    """

    def __init__(
        self,
        store: ArtefactStore,
        url_of: Callable[[str], str],
        prepare: Callable[[LabelStudioClient, int], None] | None = None,
    ) -> None:
        self.store = store
        self.url_of = url_of
        self.prepare = prepare

    def put(self, key: str, png: bytes) -> str:  # noqa: D102
        self.store.put_bytes(key, png)
        return self.url_of(key)

    def create_tasks(self, client: LabelStudioClient, project_id: int, value_key: str, tasks: list[dict]) -> list[int]:  # noqa: D102
        if self.prepare is not None:
            self.prepare(client, project_id)
        ids: list[int] = []
        for start in range(0, len(tasks), _IMPORT_BATCH):
            ids.extend(client.import_tasks(project_id, tasks[start : start + _IMPORT_BATCH]))
        return ids

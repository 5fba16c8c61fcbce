"""The record ``scraiber up`` leaves in its data directory, so that commands run beside it find its stack.

While ``scraiber up`` runs, ``<data dir>/stack.json`` names its Label Studio, its backend and
the account file holding the API key, and the process that runs them. :class:`Settings`
(``scraiber.settings``) reads it when no Label Studio is configured: ``scraiber retrain``,
``report``, ``export``... started with the same data directory (by default ``.scraiber`` in
the same folder) then talk to that Label Studio with that key, in demo mode, without any
variable. A record whose process is gone (``up`` was killed) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STACK_FILE = "stack.json"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class LocalStack:
    """What ``scraiber up`` runs.

    Attributes:
        label_studio_url: Label Studio's base URL.
        backend_url: The backend's base URL.
        account: Path of Label Studio's account file (e-mail, password, API token).
        pid: Process id of ``scraiber up``.
        started: Its start time (``/proc/PID/stat``), None where unknown.
    """

    label_studio_url: str
    backend_url: str
    account: str
    pid: int
    started: str | None = None

    @classmethod
    def of_this_process(cls, label_studio_url: str, backend_url: str, account: Path) -> LocalStack:
        """The record of a stack run by the calling process."""
        pid = os.getpid()
        return cls(label_studio_url, backend_url, str(Path(account).resolve()), pid, _start_time(pid))

    def write(self, data_dir: Path) -> Path:
        """Write the record into ``data_dir`` (mode 0600, atomically); returns its path."""
        path = Path(data_dir) / STACK_FILE
        draft = path.with_suffix(".json.part")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)
        draft.replace(path)
        return path

    @property
    def alive(self) -> bool:
        """Whether the process that wrote the record still runs."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return self.started is None or _start_time(self.pid) in (None, self.started)

    def api_key(self) -> str | None:
        """The API token from the account file (None if it cannot be read)."""
        try:
            return json.loads(Path(self.account).read_text(encoding="utf-8"))["token"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def remove(data_dir: Path) -> None:
        """Delete the record (when ``up`` stops)."""
        (Path(data_dir) / STACK_FILE).unlink(missing_ok=True)


def running_stack(data_dir: Path) -> LocalStack | None:
    """The stack ``scraiber up`` runs on ``data_dir`` now, or None (no record, unreadable, or its process is gone)."""
    try:
        stack = LocalStack(**json.loads((Path(data_dir) / STACK_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return stack if stack.alive else None

"""Run a real Label Studio 1.23.2 from this virtualenv on loopback, ready for API keys.

:class:`LabelStudioServer` starts ``label-studio start`` with its SQLite database and
uploads in ``data_dir``, waits for ``/health``, then logs in through the login form and
enables legacy API tokens for the organisation (off by default in 1.23), so the
account's token works as ``Authorization: Token ...``. A second start on the same
``data_dir`` reuses the user (Label Studio keeps the first password and token, so keep
the account: :meth:`LabelStudioAccount.load_or_create`)::

    account = LabelStudioAccount.load_or_create(data_dir / "account.json")
    with LabelStudioServer(data_dir, account) as server:
        client = server.client()

Environment given to Label Studio: ``ML_BLOCK_LOCAL_IP=false`` (lets it reach an ML
backend on loopback or a private network; its SSRF guard refuses those otherwise) and
Label Studio's banned networks minus ``allow_networks`` (loopback by default) through
``USE_DEFAULT_BANNED_SUBNETS=false`` + ``USER_ADDITIONAL_BANNED_SUBNETS``: connecting a
backend also creates a webhook to its ``/webhook``, and webhook URLs are checked with
the SSRF guard whatever ``ML_BLOCK_LOCAL_IP`` says (``POST /api/ml`` answers 403 and no
webhook exists otherwise). Also: no version check against PyPI, no analytics or Sentry
reports, SQLite, and with ``local_files_root`` ``LOCAL_FILES_SERVING_ENABLED=true`` and
``LOCAL_FILES_DOCUMENT_ROOT=ROOT`` for local-files storage. The account goes in
``LABEL_STUDIO_USERNAME``/``_PASSWORD``/``_USER_TOKEN``, out of the process list.

Start-up time measured on the project's 2-core machine (2026-11, Label Studio 1.23.2,
other contributors' jobs running): 40-80 s on a new data dir (database migrations),
5-10 s on an existing one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from ml_backend.label_studio import LabelStudioClient, LabelStudioError, LabelStudioLogin
from scraiber.processes import ManagedProcess, ProcessError, free_port

DEFAULT_START_TIMEOUT = 180.0
"""Seconds allowed from launch to a usable server (new data dir: about 40 s on 2 cores)."""

_TOKEN = re.compile(r"^[A-Za-z0-9]{6,40}$")  # Label Studio ignores tokens of 5 or fewer characters; its column holds 40

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")

# The networks Label Studio 1.23.2 refuses for server-side requests (default_banned_subnets
# in label_studio/core/utils/io.py validate_ip), used to re-ban all but the allowed ones.
_LABEL_STUDIO_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128",
    "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32",
    "2001:20::/28", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip


def banned_subnets_except(allowed: Sequence[str]) -> list[str]:
    """Label Studio's banned networks with the ``allowed`` networks cut out.

    Raises:
        ValueError: An entry of ``allowed`` is not a network such as ``172.18.0.0/16``.
    """
    cuts = [ipaddress.ip_network(network, strict=False) for network in allowed]
    remaining = [ipaddress.ip_network(network) for network in _LABEL_STUDIO_BANNED_SUBNETS]
    for cut in cuts:
        kept = []
        for network in remaining:
            if network.version != cut.version or not network.overlaps(cut):
                kept.append(network)
            elif cut.subnet_of(network) and cut != network:  # type: ignore[arg-type]  # same version here
                kept.extend(network.address_exclude(cut))  # type: ignore[arg-type]
        remaining = kept
    return [str(network) for network in remaining]


@dataclass(frozen=True)
class LabelStudioAccount:
    """The administrator Label Studio creates at its first start.

    Attributes:
        email: Login e-mail (Label Studio's user name).
        password: Login password.
        token: Legacy API token, 6 to 40 letters or digits.
    """

    email: str
    password: str
    token: str

    def __post_init__(self) -> None:
        if "@" not in self.email:
            raise ValueError(f"Label Studio user name must be an e-mail address, got {self.email!r}")
        if len(self.password) < 8:
            raise ValueError("Label Studio password must have at least 8 characters")
        if not _TOKEN.match(self.token):
            raise ValueError("Label Studio legacy token must be 6 to 40 letters or digits")

    def __repr__(self) -> str:
        return f"LabelStudioAccount(email={self.email!r}, password='***', token='***')"

    @classmethod
    def generate(cls, email: str = "admin@scraiber.local") -> LabelStudioAccount:
        """A new account with a random password and token."""
        return cls(email=email, password=secrets.token_urlsafe(18), token=secrets.token_hex(20))

    @classmethod
    def load_or_create(cls, path: Path, email: str = "admin@scraiber.local") -> LabelStudioAccount:
        """Read the account from a JSON file, or generate one and write it (mode 0600)."""
        if path.exists():
            try:
                return cls(**json.loads(path.read_text(encoding="utf-8")))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path} is not a Label Studio account file (email, password, token): {exc}") from exc
        account = cls.generate(email)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(account), handle)
        return account


def label_studio_executable() -> Path:
    """The ``label-studio`` program of the running virtualenv (or on PATH)."""
    beside = Path(sys.executable).parent / "label-studio"
    if beside.is_file():
        return beside
    found = shutil.which("label-studio")
    if found is None:
        raise OSError("label-studio is not installed: run `bash .ci/install` (it installs label-studio==1.23.2)")
    return Path(found)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


class LabelStudioServer:
    """A Label Studio process on ``host:port`` with its state in ``data_dir``.

    Args:
        data_dir: Database, uploads and Label Studio's own ``.env`` (created if missing).
        account: Administrator created at the first start (kept afterwards).
        port: TCP port; a free one when None.
        host: Address to bind (loopback by default).
        local_files_root: Enables local-files storage below this folder.
        allow_networks: Networks Label Studio may send requests to although they are
            private (its SSRF guard): where the ML backend and its ``/webhook`` live.
        extra_env: More environment variables for Label Studio (override the defaults).
        start_timeout: Seconds allowed for start-up.
        executable: The ``label-studio`` program (default: this virtualenv's).
        log_path: Log file (default: ``data_dir/label-studio.log``).
    """

    def __init__(
        self,
        data_dir: Path,
        account: LabelStudioAccount,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        local_files_root: Path | None = None,
        allow_networks: Sequence[str] = LOOPBACK_NETWORKS,
        extra_env: Mapping[str, str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        executable: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.account = account
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.local_files_root = Path(local_files_root).resolve() if local_files_root is not None else None
        self.banned_subnets = banned_subnets_except(allow_networks)
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.executable = Path(executable) if executable is not None else None
        self.log_path = Path(log_path) if log_path is not None else self.data_dir / "label-studio.log"
        self._process: ManagedProcess | None = None
        self._startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The account's legacy API token (works once :meth:`start` returned)."""
        return self.account.token

    @property
    def startup_seconds(self) -> float | None:
        """Seconds the last :meth:`start` took until the API answered with the token."""
        return self._startup_seconds

    @property
    def running(self) -> bool:
        """True while the Label Studio process runs."""
        return self._process is not None and self._process.running

    def environment(self) -> dict[str, str]:
        """The environment variables set for Label Studio on top of the inherited ones (with secrets)."""
        env = {
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "DJANGO_DB": "sqlite",
            "ML_BLOCK_LOCAL_IP": "false",
            "USE_DEFAULT_BANNED_SUBNETS": "false",
            "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(self.banned_subnets),
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "PYTHONUNBUFFERED": "1",
            "LABEL_STUDIO_USERNAME": self.account.email,
            "LABEL_STUDIO_PASSWORD": self.account.password,
            "LABEL_STUDIO_USER_TOKEN": self.account.token,
        }
        if self.local_files_root is not None:
            env["LOCAL_FILES_SERVING_ENABLED"] = "true"
            env["LOCAL_FILES_DOCUMENT_ROOT"] = str(self.local_files_root)
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        """The ``label-studio start`` command line.

        The account travels in the environment (``LABEL_STUDIO_USERNAME``,
        ``LABEL_STUDIO_PASSWORD``, ``LABEL_STUDIO_USER_TOKEN``), not on the command line
        where every local user could read it in the process list.
        """
        return [
            str(self.executable or label_studio_executable()),
            "start",
            "--no-browser",
            "--internal-host",
            self.host,
            "--port",
            str(self.port),
            "--enable-legacy-api-token",
        ]

    def start(self) -> LabelStudioServer:
        """Start Label Studio, wait for ``/health``, enable legacy tokens, check the token.

        Raises:
            ProcessError: The port is taken, or Label Studio exits or is not ready in time
                (the message ends with its log).
            LabelStudioError: The login or the token does not work: ``data_dir`` holds a
                user created with another password or token.
        """
        if self.running:
            return self
        if _port_in_use(self.host, self.port):
            # Label Studio would silently move to the next port; refuse instead.
            raise ProcessError(f"port {self.port} on {self.host} is in use; choose another port for Label Studio")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._process = ManagedProcess(
            self.command(),
            log_path=self.log_path,
            env=self.environment(),
            ready=self._healthy,
            ready_timeout=self.start_timeout,
            name="Label Studio",
            redact=(self.account.password, self.account.token),
        )
        self._process.start()
        try:
            self._enable_legacy_tokens()
        except BaseException:
            self.stop()
            raise
        self._startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop Label Studio (SIGTERM, then SIGKILL after 10 s). Safe to repeat."""
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self, timeout: float = 30) -> LabelStudioClient:
        """A client authenticated with the account's legacy token."""
        return LabelStudioClient(self.url, self.account.token, timeout=timeout)

    def login(self) -> LabelStudioLogin:
        """A cookie session of the account, logged in through the login form."""
        return LabelStudioLogin(self.url, self.account.email, self.account.password)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Label Studio's log."""
        return self._process.log_tail(lines) if self._process is not None else ""

    def _healthy(self) -> bool:
        if "Trying to start at" in self.log_tail(200):
            raise ProcessError(f"Label Studio found port {self.port} in use and moved to another port")
        try:
            response = requests.get(self.url + "/health", timeout=2)
        except requests.RequestException:
            return False
        if response.status_code != 200:
            return False
        try:
            return response.json().get("status") == "UP"
        except ValueError:
            return False

    def _enable_legacy_tokens(self) -> None:
        try:
            session = self.login()
        except LabelStudioError as exc:
            raise LabelStudioError(
                f"{exc}; if {self.data_dir} was created with another account, use that one or a new data dir",
                exc.status_code,
                exc.method,
                exc.path,
            ) from exc
        with session:
            wanted = {"legacy_api_tokens_enabled": True, "api_tokens_enabled": True}
            if any(session.jwt_settings().get(key) is not value for key, value in wanted.items()):
                session.update_jwt_settings(**wanted)
            if session.legacy_token() != self.account.token:
                raise LabelStudioError(
                    f"the Label Studio user {self.account.email} in {self.data_dir} has another API token than the one"
                    " given; use the account this data dir was created with, or a new data dir"
                )

"""LabelStudioServer: environment, account handling, refusing a taken port, restart on the same data dir."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import stat
from pathlib import Path

import pytest

from ml_backend.label_studio import LabelStudioError
from scraiber.label_studio_server import (
    LabelStudioAccount,
    LabelStudioServer,
    banned_subnets_except,
    label_studio_executable,
)
from scraiber.processes import ProcessError
from tests.fixtures.label_studio import LabelStudioInstance


def test_account_is_generated_once_and_kept_private(tmp_path: Path):
    path = tmp_path / "state" / "account.json"
    account = LabelStudioAccount.load_or_create(path, email="petrologist@example.org")
    assert LabelStudioAccount.load_or_create(path) == account
    assert json.loads(path.read_text()) == {
        "email": "petrologist@example.org",
        "password": account.password,
        "token": account.token,
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert account.password not in repr(account) and account.token not in repr(account)
    assert len(account.token) == 40


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"email": "admin", "password": "long enough", "token": "abcdef123456"}, "e-mail"),
        ({"email": "a@b.org", "password": "short", "token": "abcdef123456"}, "8 characters"),
        ({"email": "a@b.org", "password": "long enough", "token": "abc12"}, "6 to 40"),
        ({"email": "a@b.org", "password": "long enough", "token": "a.b.c-token"}, "6 to 40"),
    ],
)
def test_account_refuses_what_label_studio_would_ignore(fields: dict, problem: str):
    with pytest.raises(ValueError, match=problem):
        LabelStudioAccount(**fields)


def test_broken_account_file_is_a_value_error(tmp_path: Path):
    path = tmp_path / "account.json"
    path.write_text('{"email": "a@b.org"}')
    with pytest.raises(ValueError, match="not a Label Studio account file"):
        LabelStudioAccount.load_or_create(path)


def test_banned_subnets_keep_everything_but_the_allowed_networks():
    default = banned_subnets_except([])
    assert len(default) == 31 and "127.0.0.0/8" in default and "10.0.0.0/8" in default
    loopback = banned_subnets_except(["127.0.0.0/8", "::1/128"])
    assert set(default) - set(loopback) == {"127.0.0.0/8", "::1/128"}
    compose = [ipaddress.ip_network(n) for n in banned_subnets_except(["172.18.0.0/16"])]
    banned = lambda ip: any(ipaddress.ip_address(ip) in n for n in compose)  # noqa: E731
    assert not banned("172.18.3.4") and banned("172.17.0.1") and banned("172.31.255.1") and banned("127.0.0.1")
    with pytest.raises(ValueError):
        banned_subnets_except(["not-a-network"])


def test_secrets_travel_in_the_environment_not_the_command(tmp_path: Path):
    account = LabelStudioAccount.generate()
    server = LabelStudioServer(tmp_path / "data", account, port=8999, local_files_root=tmp_path / "files")
    command = " ".join(server.command())
    assert account.password not in command and account.token not in command
    assert "--internal-host 127.0.0.1 --port 8999" in command
    env = server.environment()
    assert env["LABEL_STUDIO_PASSWORD"] == account.password and env["LABEL_STUDIO_USER_TOKEN"] == account.token
    assert env["ML_BLOCK_LOCAL_IP"] == "false" and env["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert "127.0.0.0/8" not in env["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert env["LOCAL_FILES_SERVING_ENABLED"] == "true"
    assert env["LOCAL_FILES_DOCUMENT_ROOT"] == str((tmp_path / "files").resolve())
    assert env["LABEL_STUDIO_BASE_DATA_DIR"] == str((tmp_path / "data").resolve())
    assert server.url == "http://127.0.0.1:8999"
    assert label_studio_executable().name == "label-studio"


def test_a_taken_port_is_refused_before_starting(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LabelStudioServer(tmp_path / "data", LabelStudioAccount.generate(), port=port)
        with pytest.raises(ProcessError, match=f"port {port} on 127.0.0.1 is in use"):
            server.start()
    assert not server.running


@pytest.mark.slow
def test_restart_on_the_same_data_dir_keeps_user_and_token(label_studio: LabelStudioInstance):
    server = label_studio.server
    project = label_studio.client.create_project("Survives restart", "<View></View>")
    server.stop()
    assert not server.running
    try:
        # Label Studio keeps the first password and token of a user: other ones fail clearly.
        wrong_password = LabelStudioAccount(label_studio.username, "another password", label_studio.api_key)
        wrong_token = LabelStudioAccount(label_studio.username, label_studio.password, secrets.token_hex(20))
        for account, problem in [
            (wrong_password, f"login as {label_studio.username} failed.*created with another account"),
            (wrong_token, "has another API token than the one given"),
        ]:
            other = LabelStudioServer(server.data_dir, account)
            try:
                with pytest.raises(LabelStudioError, match=problem) as caught:
                    other.start()
                assert not other.running  # a failed start stops its process
            finally:
                other.stop()  # no-op unless the test failed
            assert account.password not in str(caught.value) and account.token not in str(caught.value)
    finally:
        server.start()  # the same account again: idempotent
    assert server.startup_seconds is not None
    assert label_studio.client.whoami()["email"] == label_studio.username
    assert label_studio.client.get_project(project["id"])["title"] == "Survives restart"

"""Commands beside `scraiber up` find its stack through the record in the data dir, and only while it runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scraiber.local_stack import STACK_FILE, LocalStack, running_stack
from scraiber.settings import Settings


@pytest.fixture
def no_env(monkeypatch):
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "SCRAIBER_DEMO", "SCRAIBER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _stack(tmp_path, pid: int | None = None) -> LocalStack:
    account = tmp_path / "label-studio" / "account.json"
    account.parent.mkdir(parents=True)
    account.write_text(json.dumps({"email": "admin@scraiber.local", "password": "p" * 12, "token": "abc123token"}))
    stack = LocalStack.of_this_process("http://127.0.0.1:18080", "http://127.0.0.1:19090", account)
    if pid is not None:
        stack = LocalStack(stack.label_studio_url, stack.backend_url, stack.account, pid, None)
    stack.write(tmp_path)
    return stack


def test_settings_use_the_running_stack_of_their_data_dir(tmp_path, no_env):
    assert Settings(data_dir=tmp_path).label_studio_api_key is None
    _stack(tmp_path)
    assert (tmp_path / STACK_FILE).stat().st_mode & 0o777 == 0o600
    no_env.setenv("SCRAIBER_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.label_studio_url == "http://127.0.0.1:18080"
    assert settings.label_studio_api_key.get_secret_value() == "abc123token"
    assert settings.demo and not settings.auth_required


def test_a_configured_label_studio_wins(tmp_path, no_env):
    _stack(tmp_path)
    no_env.setenv("LABEL_STUDIO_URL", "https://labels.example.org")
    settings = Settings(data_dir=tmp_path)
    assert settings.label_studio_url == "https://labels.example.org" and settings.label_studio_api_key is None
    assert not settings.demo
    no_env.delenv("LABEL_STUDIO_URL")
    no_env.setenv("SCRAIBER_DEMO", "false")  # the stack, but not its demo mode
    assert not Settings(data_dir=tmp_path).demo and Settings(data_dir=tmp_path).label_studio_api_key is not None


def test_a_record_of_a_stopped_up_is_ignored(tmp_path, no_env):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _stack(tmp_path, pid=int(gone.stdout))
    assert running_stack(tmp_path) is None
    assert Settings(data_dir=tmp_path).label_studio_api_key is None
    LocalStack.remove(tmp_path)
    assert not (tmp_path / STACK_FILE).exists()

"""One LabelStudioClient shared by the web server's threads, against the real Label Studio 1.23.2."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from label_studio_sdk.tokens.client_ext import TokensClientExt

from ml_backend.label_studio import LabelStudioClient

pytestmark = pytest.mark.slow


def expire_access_token(client: LabelStudioClient) -> None:
    """Make the client's cached access token one that expired a minute ago (as after five minutes)."""
    expired = jwt.encode(
        {"token_type": "access", "exp": int(time.time()) - 60}, "not-the-signing-key-of-label-studio", algorithm="HS256"
    )
    client.sdk._client_wrapper._tokens_client._access_token = expired


def test_threads_share_one_client_and_one_token_refresh(label_studio, monkeypatch: pytest.MonkeyPatch):
    exchanges = []
    lock = threading.Lock()
    refresh = TokensClientExt.refresh

    def counting(self, *args, **kwargs):
        with lock:
            exchanges.append(1)
        return refresh(self, *args, **kwargs)

    monkeypatch.setattr(TokensClientExt, "refresh", counting)
    with label_studio.login() as session:
        pat = session.create_personal_access_token()
    client = LabelStudioClient(label_studio.url, pat)
    assert client.whoami()["email"] == label_studio.username and len(exchanges) == 1
    expire_access_token(client)
    start = threading.Barrier(8)

    def call(_: int) -> str:
        start.wait()
        return client.whoami()["email"]

    with ThreadPoolExecutor(8) as pool:
        emails = list(pool.map(call, range(8)))
    assert emails == [label_studio.username] * 8
    assert len(exchanges) == 2  # one refresh for all eight threads
    client.close()
    assert client.whoami()["email"] == label_studio.username  # usable again after close (a new pool, a new token)
    assert len(exchanges) == 3

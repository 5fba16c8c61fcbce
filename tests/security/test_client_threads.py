"""One LabelStudioClient shared by the web server's threads, against the real Label Studio 1.23.2."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ml_backend.label_studio import LabelStudioClient

pytestmark = pytest.mark.slow


class CountingClient(LabelStudioClient):
    """The real client, counting its token exchanges."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges = 0
        self._count_lock = threading.Lock()

    def _exchange_pat(self) -> str:
        with self._count_lock:
            self.exchanges += 1
        return super()._exchange_pat()


def test_threads_share_one_client_and_one_token_refresh(label_studio):
    with label_studio.login() as session:
        pat = session.create_personal_access_token()
    client = CountingClient(label_studio.url, pat)
    assert client.whoami()["email"] == label_studio.username and client.exchanges == 1
    client._access = "expired-access-token"  # as after five minutes: every thread gets a 401 first
    start = threading.Barrier(8)

    def call(_: int) -> str:
        start.wait()
        return client.whoami()["email"]

    with ThreadPoolExecutor(8) as pool:
        emails = list(pool.map(call, range(8)))
    assert emails == [label_studio.username] * 8
    assert client.exchanges == 2  # one refresh for all eight threads
    assert len(client._sessions) == 9  # each thread its own HTTP session (8 + this one)
    client.close()
    assert client.whoami()["email"] == label_studio.username  # usable again after close

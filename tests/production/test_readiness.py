"""/readyz against a real gunicorn process when PostgreSQL goes away and comes back."""

from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.production.processes import service_env, start_gunicorn, stop, wait_until
from tests.production.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_database(database_url):
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc)).replace("postgresql+psycopg://", "postgresql://")
    proxy.close()


def test_readyz_follows_the_database(app, proxied_database, tmp_path):
    proxy, url = proxied_database
    base, proc = start_gunicorn(service_env(DATABASE_URL=url), workers=2, log=tmp_path / "gunicorn.log")
    try:
        ready = requests.get(base + "/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["migrations"]["ok"] is True

        proxy.cut()
        down = wait_until(lambda: (r := requests.get(base + "/readyz", timeout=10)).status_code == 503 and [r],
                          timeout=20, what="/readyz to report the database gone")[0]
        assert down.json()["checks"]["database"]["ok"] is False
        assert requests.get(base + "/healthz", timeout=5).status_code == 200  # the process itself is alive
        assert url.split("@")[-1] not in down.text

        proxy.restore()
        wait_until(lambda: requests.get(base + "/readyz", timeout=10).status_code == 200, timeout=20,
                   what="/readyz to recover")
    finally:
        stop(proc)

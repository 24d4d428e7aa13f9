"""gunicorn.conf.py's worker takes a connection only while it has a thread free: under load, connections (kept
alive or new) spread over the workers instead of queueing in one while another idles (gunicorn_worker.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.production.processes import service_env, start_gunicorn, stop


@pytest.fixture
def meeting_server(tmp_path):
    """gunicorn with the production config serving tests/production/meeting_app.py; yields a function that starts
    it with ``workers`` x ``threads`` and returns its base URL."""
    started = []

    def start(workers: int, threads: int) -> str:
        url, proc = start_gunicorn(service_env(MEETING_DIR=str(tmp_path)), workers=workers,
                                   log=tmp_path / "gunicorn.log",
                                   extra=("--threads", str(threads), "tests.production.meeting_app:app"))
        started.append(proc)
        return url

    yield start
    for proc in started:
        stop(proc)


def meet(sessions: list[requests.Session], url: str, meeting: str, *, expected: int | None = None) -> list[dict]:
    """Every session asks at once to meet the others in ``meeting``."""
    expected = expected or len(sessions)
    with ThreadPoolExecutor(len(sessions)) as pool:
        answers = pool.map(lambda s: s.get(f"{url}/meet", params={"round": meeting, "of": expected}, timeout=15),
                           sessions)
        return [answer.json() for answer in answers if answer.status_code == 200]


def test_new_connections_go_to_a_worker_with_a_free_thread(meeting_server):
    # Two workers of one thread: two requests at once can only meet if each worker takes one. A stock gthread
    # worker whose thread is busy still accepts, and the second request waits behind the first (half the time).
    url = meeting_server(workers=2, threads=1)
    for meeting in range(6):
        sessions = [requests.Session() for _ in range(2)]
        for session in sessions:
            session.headers["Connection"] = "close"
        answers = meet(sessions, url, f"new{meeting}")
        assert [a["met"] for a in answers] == [True, True], f"round {meeting}: {answers}"
        assert len({a["pid"] for a in answers}) == 2


def test_kept_alive_connections_spread_over_the_workers(meeting_server):
    # As bench/webhooks.py's clients (and a proxy's upstream pool) do: connections opened together and reused.
    url = meeting_server(workers=2, threads=2)
    sessions = [requests.Session() for _ in range(4)]
    for meeting in range(3):
        answers = meet(sessions, url, f"kept{meeting}")
        assert [a["met"] for a in answers] == [True] * 4, f"round {meeting}: {answers}"
        assert sorted(Counter(a["pid"] for a in answers).values()) == [2, 2]


def test_a_new_connection_is_answered_while_kept_alive_ones_keep_every_thread_busy(meeting_server):
    # Four kept-alive clients take turns on one thread: it is never free at the end of a round. A worker that only
    # accepted with a thread free would leave the third client waiting until they stopped.
    url = meeting_server(workers=1, threads=1)
    answered = threading.Event()

    def keep_busy():
        with requests.Session() as session:
            deadline = time.monotonic() + 20
            while not answered.is_set() and time.monotonic() < deadline:
                assert session.get(f"{url}/busy", params={"ms": 5}, timeout=15).status_code == 200

    with ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(keep_busy) for _ in range(4)]
        time.sleep(0.5)
        try:
            newcomer = requests.get(f"{url}/busy", params={"ms": 1}, headers={"Connection": "close"}, timeout=15)
        finally:
            answered.set()
        still_busy = [not f.done() for f in busy]
        for f in busy:
            f.result()
    assert newcomer.status_code == 200
    assert all(still_busy)  # answered while the others still kept the thread busy


def test_a_connection_arriving_while_every_thread_is_busy_is_answered_when_one_frees(meeting_server):
    url = meeting_server(workers=2, threads=1)
    sessions = [requests.Session() for _ in range(3)]
    answers = meet(sessions, url, "crowd", expected=2)
    assert len(answers) == 3 and all(a["met"] for a in answers)

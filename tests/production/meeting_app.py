"""A WSGI app for tests/production/test_gunicorn_worker.py, served by gunicorn.conf.py in place of Coursegate.

``GET /meet?round=R&of=N`` waits (up to 3 s) until N requests of round R are being served at once, by any of the
server's worker processes, then answers whether they met and which process served it. Requests can meet only if
each has a thread of its own: one queued behind another in a busy worker waits out the other's timeout.
``GET /busy?ms=M`` keeps its thread for M milliseconds.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

MEETING_DIR = Path(os.environ.get("MEETING_DIR", "."))


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        return _answer(start_response, {"status": "ok"})
    query = parse_qs(environ["QUERY_STRING"])
    if environ["PATH_INFO"] == "/busy":
        time.sleep(int(query["ms"][0]) / 1000)
        return _answer(start_response, {"pid": os.getpid()})
    meeting, expected = query["round"][0], int(query["of"][0])
    (MEETING_DIR / f"{meeting}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    deadline = time.monotonic() + 3
    while (present := len(list(MEETING_DIR.glob(f"{meeting}-*")))) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return _answer(start_response, {"pid": os.getpid(), "met": present >= expected})


def _answer(start_response, payload: dict):
    body = json.dumps(payload).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

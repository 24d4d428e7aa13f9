"""``scripts/serve`` as a newcomer runs it: it says where it serves, and stopping it (Ctrl-C in the terminal,
or SIGTERM from a process manager) leaves nothing running, the periodic-job loop included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PORT = 5671


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            found.append(int(entry.name))
    return found


def _wait_until_gone(pgid: int, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_serve_prints_its_url_and_stops_with_its_job_loop(tmp_path, how):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "HOST")}
    env.update(PORT=str(PORT), COURSEGATE_INSTANCE_PATH=str(tmp_path / "instance"), COURSEGATE_JOB_INTERVAL="1",
               COURSEGATE_VENV=sys.prefix, COURSEGATE_LOG_FORMAT="text", PYTHONUNBUFFERED="1")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{PORT}/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        time.sleep(1.5)  # the job loop has run its jobs once at least
        output = log.read_text()
        assert f"Coursegate is serving http://127.0.0.1:{PORT}" in output
        assert "COURSEGATE_SITE_NAME" in output and "MAIL_DEFAULT_SENDER" in output  # how to send as your site
        assert (tmp_path / "instance" / "coursegate.sqlite3").exists()
        assert len(_group_members(proc.pid)) >= 3  # the script, the server, the job loop (and its sleep)

        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        proc.wait(timeout=20)
        assert _wait_until_gone(proc.pid) == [], "something of scripts/serve is still running"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{PORT}/login", timeout=2)
    finally:
        if _group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)

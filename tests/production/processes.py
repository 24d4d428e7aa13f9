"""Start and stop real service processes (gunicorn, Celery workers) for the production tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import ROOT, TEST_SECRET_KEY, free_port

BIN = Path(sys.executable).parent


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEGATE_", "MAIL_", "CELERY_"))}
    env.update({
        # The test app's key: the integrations it stores are encrypted under it, and the processes decrypt them.
        "SECRET_KEY": TEST_SECRET_KEY,
        "SITE_URL": "http://coursegate.test",
        "COURSEGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        # gunicorn.conf.py refuses several workers counting rate limits each on its own; tests about other
        # things accept that (test_start_up.py drops this to see the refusal, test_rate_limits.py uses Redis).
        "COURSEGATE_RATELIMIT_PER_PROCESS": "1",
    })
    env.update(overrides)
    return env


def gunicorn_argv(port: int, workers: int, *extra: str) -> list[str]:
    return [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), *extra]


def start_gunicorn(env: dict[str, str], *, workers: int = 2, log: Path | None = None,
                   extra: tuple[str, ...] = ()) -> tuple[str, subprocess.Popen]:
    """gunicorn as gunicorn.conf.py starts it, with ``extra`` arguments (other settings, another app)."""
    port = free_port()
    proc = _spawn(gunicorn_argv(port, workers, *extra), env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url + "/healthz"), timeout=30, what=f"gunicorn on {url}", proc=proc)
    return url, proc


def start_gunicorns(env: dict[str, str], count: int, *, workers: int = 2,
                    log_dir: Path | None = None) -> list[tuple[str, subprocess.Popen]]:
    """``count`` gunicorn masters started side by side (faster than one after the other on a small machine)."""
    started = []
    try:
        for n in range(count):
            port = free_port()
            log = log_dir / f"gunicorn{n}.log" if log_dir else None
            proc = _spawn(gunicorn_argv(port, workers), env, log)
            started.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in started:
            wait_until(lambda: _answers(url + "/healthz"), timeout=60, what=f"gunicorn on {url}", proc=proc)
    except BaseException:
        for _, proc in started:
            stop(proc)
        raise
    return started


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``flask --app app <args>`` as an operator would type it; fails the test with its output on error."""
    result = subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"flask {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


def start_celery_worker(env: dict[str, str], name: str, *, log: Path | None = None,
                        extra: list[str] | None = None) -> subprocess.Popen:
    return _spawn([str(BIN / "celery"), "-A", "worker", "worker", "--loglevel", "WARNING", "--concurrency", "2",
                   "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", *(extra or [])], env, log)


def start_celery_beat(env: dict[str, str], state: Path, *, log: Path | None = None) -> subprocess.Popen:
    """``celery -A worker beat`` with its state file (``--schedule``) where the test says."""
    return _spawn([str(BIN / "celery"), "-A", "worker", "beat", "--loglevel", "INFO", "--schedule", str(state),
                   "--pidfile", str(state.with_suffix(".pid"))], env, log)


def _spawn(argv: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
    if log is None:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_until(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")



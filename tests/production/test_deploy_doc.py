"""docs/deploy.md, followed literally on a fresh host, works: its command block is run line by line here.

Paths the doc uses on a real machine (/opt/coursegate, /run/coursegate…, /var/lib/coursegate, /etc/coursegate)
are moved under a temporary folder, so a command that needs a folder nobody created fails here as it would
there. The systemd units and the example environment file in deploy/ are checked against the same block.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement

import schedule
from tests.conftest import ROOT, free_port
from tests.production.processes import BIN, run_cli, service_env, stop, wait_until

DOC = ROOT / "docs" / "deploy.md"
DEPLOY = ROOT / "deploy"
# Provisioning a machine (user, checkout, virtualenv, the environment file) is what the test run already has.
PROVISIONING = ("useradd ", "git clone ", "python3 -m venv", ".venv/bin/pip install", "install -D ", "set -a")
DAEMONS = ("gunicorn ", "celery ", "PROMETHEUS_MULTIPROC_DIR=")


def doc_commands() -> list[str]:
    """The shell lines of the first ``sh`` block under "## Commands", comments dropped."""
    text = DOC.read_text()
    section = text[text.index("## Commands"):]
    block = section[section.index("```sh") + len("```sh"):]
    block = block[:block.index("```")]
    lines = []
    for raw in block.splitlines():
        line = re.sub(r"\s+# .*$", "", raw).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def on_this_host(line: str, root: Path, ports: dict[str, int]) -> str:
    line = line.replace("/opt/coursegate/.venv/bin/", f"{BIN}/").replace("$PWD/.venv/bin", str(BIN))
    for real in ("/run/", "/var/lib/", "/etc/"):
        line = line.replace(real, f"{root}{real}")
    line = line.replace("0.0.0.0:8000", f"127.0.0.1:{ports['web']}")
    return line.replace("127.0.0.1:9101", f"127.0.0.1:{ports['worker_metrics']}")


def test_the_doc_block_is_what_the_test_runs():
    commands = doc_commands()
    assert any(c.startswith(".venv/bin/pip install -r requirements.lock") for c in commands)
    assert any(c.startswith("flask --app app owners create ") for c in commands), "the first owner"
    assert any(c.startswith("flask --app app api-keys create ") for c in commands), "the first API key"
    ran = [c for c in commands if not c.startswith(PROVISIONING)]
    assert [c.split()[0] for c in ran if c.startswith(DAEMONS)] == ["gunicorn", "PROMETHEUS_MULTIPROC_DIR=/run/"
                                                                    "coursegate-worker/metrics", "celery"]


@pytest.mark.postgres
def test_the_documented_commands_bring_up_a_working_site(database_url, redis_url, tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    ports = {"web": free_port(), "worker_metrics": free_port()}
    commands = [on_this_host(c, root, ports) for c in doc_commands() if not c.startswith(PROVISIONING)]
    split = max(i for i, c in enumerate(commands) if c.startswith("flask ")) + 1
    setup, services = commands[:split], commands[split:]
    env = service_env(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url, COURSEGATE_ENV="production",
                      COURSEGATE_LOG_LEVEL="INFO", COURSEGATE_LOG_FORMAT="json")

    # Migrate, the first owner (the password typed twice at the prompt), the first API key.
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(setup)], cwd=ROOT, env=env, text=True,
                            input="a-long-owner-password\na-long-owner-password\n", capture_output=True,
                            timeout=180, start_new_session=True)
    assert result.returncode == 0, result.stdout + result.stderr
    key = result.stdout.strip().splitlines()[-1]

    # gunicorn, a worker, beat: each line as written, in the background of one shell.
    exports = [c for c in setup if c.startswith("export ")]
    script = "\n".join(exports + [c + " &" if c.startswith(DAEMONS) else c for c in services] + ["wait"])
    log = tmp_path / "services.log"
    with open(log, "wb") as out:
        shell = subprocess.Popen(["bash", "-eu", "-c", script], cwd=ROOT, env=env, stdout=out, stderr=out,
                                 start_new_session=True)
    base = f"http://127.0.0.1:{ports['web']}"
    metrics = f"http://127.0.0.1:{ports['worker_metrics']}/metrics"
    try:
        wait_until(lambda: _get(base + "/readyz"), timeout=60, proc=shell, what=f"gunicorn (see {log})")
        assert requests.get(base + "/readyz", timeout=5).json()["status"] == "ok"
        courses = requests.get(base + "/api/v1/courses", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert courses.status_code == 200, "the API key the doc made works"
        state = root / "var/lib/coursegate/celerybeat-schedule"
        wait_until(lambda: list(state.parent.glob(state.name + "*")), timeout=60, proc=shell,
                   what=f"beat to write its state file (see {log})")

        # What beat sends (by task name), run by the documented worker: JSON logs, metrics, `jobs list`.
        from celery import Celery

        sender = Celery(broker=redis_url)
        sender.send_task("billing.tick")
        wait_until(lambda: _tick_count(metrics) >= 1, timeout=60, proc=shell,
                   what=f"coursegate_billing_tick_seconds_count on the worker's exporter (see {log})")
        sender.close()
        listed = run_cli(env, "jobs", "list").stdout
        assert re.search(r"^billing\.tick\t.*last run 20\d\d-", listed, re.M), listed
        assert shell.poll() is None, log.read_text()
    finally:
        stop(shell)
    jobs = [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{") and '"event": "job"' in line]
    assert any(job["job"] == "billing.tick" and job["outcome"] == "ok" for job in jobs), log.read_text()[-3000:]
    # Beat's and the worker's log records are JSON too (only Celery's start-up banner is not a log record).
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert {"celery.beat", "coursegate.job"} <= {record["logger"] for record in records}
    plain = [line for line in log.read_text().splitlines() if re.match(r"^\[\d{4}-\d\d-\d\d [^]]*: [A-Z]+/", line)]
    assert plain == [], plain[:5]


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tick_count(url: str) -> float:
    try:
        text = requests.get(url, timeout=2).text
    except requests.RequestException:
        return 0
    match = re.search(r"^coursegate_billing_tick_seconds_count (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0


def test_every_flask_command_works_while_the_metrics_folder_is_missing(app, database_url, tmp_path):
    folder = tmp_path / "run" / "coursegate" / "metrics"
    env = service_env(DATABASE_URL=database_url, PROMETHEUS_MULTIPROC_DIR=str(folder))
    run_cli(env, "jobs", "list")
    assert folder.is_dir()


def test_a_production_host_without_secret_key_refuses_to_start(database_url):
    env = service_env(DATABASE_URL=database_url, COURSEGATE_ENV="production")
    del env["SECRET_KEY"]
    result = subprocess.run([str(BIN / "flask"), "--app", "app", "jobs", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_the_docs_name_only_tasks_and_jobs_that_exist(app):
    celery_app = app.extensions["celery"]
    celery_app.loader.import_default_modules()  # what a worker does at start (see test_worker_tasks.py)
    known = set(celery_app.tasks) | {job.name for job in schedule.PERIODIC_JOBS}
    domains = "fulfillment|billing|emails|membership|automations|keap"
    for doc in (ROOT / "README.md", DOC):
        named = set(re.findall(rf"`((?:{domains})\.[a-z_]+)`", doc.read_text()))
        modules = {name for name in named if (ROOT / name.replace(".", "/")).with_suffix(".py").exists()}
        assert named - modules <= known, f"{doc.name} names tasks that do not exist: {sorted(named - modules - known)}"


def test_the_systemd_units_run_the_documented_commands():
    commands = doc_commands()
    for name in ("web", "worker", "beat"):
        unit = (DEPLOY / f"coursegate-{name}.service").read_text()
        settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
        assert settings["EnvironmentFile"] == "/etc/coursegate/coursegate.env"
        assert settings["WorkingDirectory"] == "/opt/coursegate"
        program = settings["ExecStart"].removeprefix("/opt/coursegate/.venv/bin/")
        environment = " ".join(v for k, v in re.findall(r"^(Environment)=(.*)$", unit, re.M))
        # The doc's line for that process (its leading VAR=value settings are the unit's Environment=).
        words = program.split()
        line = next(c for c in commands if [w for w in shlex.split(c) if "=" not in w][:len(words)] == words)
        for word in shlex.split(line):
            if "=" in word and not word.startswith("-"):
                assert word in environment, f"{name}: the doc sets {word}, the unit does not"
        assert program in line, f"{name}: the unit runs {program!r}, the doc {line!r}"
        for folder in re.findall(r"(/(?:run|var/lib)/[\w/-]+)", environment + " " + program):
            kind, managed = ("StateDirectory", "/var/lib/") if folder.startswith("/var/lib/") else (
                "RuntimeDirectory", "/run/")
            assert any(folder.startswith(managed + d) for d in settings.get(kind, "").split()), (
                f"{name}: systemd creates no {folder} ({kind}=)")


def test_the_example_environment_file_holds_only_documented_settings():
    names = re.findall(r"^([A-Z_]+)=", (DEPLOY / "coursegate.env.example").read_text(), re.M)
    doc = DOC.read_text()
    assert {"DATABASE_URL", "SECRET_KEY", "SITE_URL", "CELERY_BROKER_URL", "COURSEGATE_ENV"} <= set(names)
    assert [n for n in names if f"`{n}`" not in doc] == []


def test_both_lock_files_pin_every_dependency_within_its_range():
    """After a change to pyproject.toml, `scripts/lock` brings the lock files up to date."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for lock, requirements in (("requirements.lock", project["dependencies"]),
                               ("requirements-test.lock",
                                project["dependencies"] + project["optional-dependencies"]["test"])):
        pins = {name.lower().replace("_", "-"): version for name, version in
                re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (ROOT / lock).read_text(), re.M)}
        for spec in map(Requirement, requirements):
            name = spec.name.lower().replace("_", "-")
            assert name in pins, f"{lock} does not pin {name}: run scripts/lock"
            assert spec.specifier.contains(pins[name], prereleases=True), f"{lock}: {name}=={pins[name]} not {spec}"

"""`celery -A worker worker` registers every task the code can send, not only those imported by chance."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT
from tests.production.processes import service_env

TASK = re.compile(r'@shared_task\(\s*name="([^"]+)"')


def test_the_worker_registers_every_task_in_the_code(tmp_path):
    defined = {name for path in ROOT.rglob("*.py") if not {".venv", "tests"} & set(path.relative_to(ROOT).parts)
               for name in TASK.findall(path.read_text())}
    assert {"emails.deliver", "billing.tick"} <= defined
    script = ("import worker; worker.celery_app.loader.import_default_modules(); "
              "print('\\n'.join(sorted(worker.celery_app.tasks)))")  # what the worker does at start
    env = service_env(DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}", CELERY_BROKER_URL="memory://")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    missing = defined - set(result.stdout.split())
    assert not missing, f"add their modules to schedule.TASK_MODULES: {sorted(missing)}"

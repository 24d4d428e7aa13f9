"""schemathesis, with every check, against the owner API on a live app (SQLite): no answer breaks the spec.

Bounded for the suite: a few examples per operation, a fixed seed, no coverage phase (under a minute here), and
422 counted as an answer to schema-valid data (tests/schemathesis.toml says why). ``scripts/api-fuzz`` runs the
same with more examples, a fresh seed, the coverage phase and without that allowance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import responses

from extensions import db
from tests import factories
from tests.billing.helpers import make_plan

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"

CONFIG = Path(__file__).with_name("schemathesis.toml")  # why 422 is an expected answer to valid data


@pytest.fixture
def some_data(app):
    """Something for the operations to find: a plan (and its level), a member with a tag."""
    with app.app_context():
        plan = make_plan()
        member = factories.make_member(email="ada@example.com")
        db.session.commit()
        return {"plan_id": plan.id, "member_id": member.id}


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed (the test extras)")
def test_every_answer_of_the_owner_api_matches_its_spec(live_server, api_key, some_data, tmp_path):
    everything = os.environ.get("COURSEGATE_API_FUZZ_ALL") == "1"
    command = [str(SCHEMATHESIS), *([] if everything else ["--config-file", str(CONFIG)]), "run", f"{live_server}/api/v1/openapi.json", "--checks", "all",
               "--header", f"Authorization: Bearer {api_key}",
               "--max-examples", os.environ.get("COURSEGATE_API_FUZZ_EXAMPLES", "5"),
               # The coverage phase (thousands of boundary cases whatever --max-examples says) only in the long run.
               "--phases", "examples,coverage,fuzzing" if everything else "examples,fuzzing",
               "--workers", "1", "--generation-database", "none",
               "--include-path-regex", "^/api/v1/", "--no-color", "--report-dir", str(tmp_path)]
    if not everything:
        command += ["--seed", "20261206"]
    # The fuzzer creates webhook endpoints and Keap/Stripe integrations at made-up hosts: no request leaves.
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

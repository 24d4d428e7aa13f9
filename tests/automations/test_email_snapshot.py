"""Golden files for the automation_message email (owner-written subject and body inside our layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emails import rendering

SNAPSHOTS = Path(__file__).parent / "snapshots"
CONTEXT = {"message_subject": "Your bonus is ready, Ada",
           "message_body": "Hi Ada,\n\nYour bonus lesson is open: http://coursegate.test/login/abc\nSee you <there>."}


def _check(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if not path.exists():
        path.write_text(actual, encoding="utf-8")
        pytest.fail(f"wrote the missing golden file {path.name}: review it, commit it, run again")
    assert actual == path.read_text(encoding="utf-8")


def test_automation_message_matches_its_golden_files(app_ctx):
    subject, text, html = rendering.render("automation_message", CONTEXT)
    assert subject == "Your bonus is ready, Ada"
    _check("automation_message.txt", text)
    _check("automation_message.html", html)
    assert "See you &lt;there&gt;." in html and "<br>" in html

"""Member-facing pages (server-rendered)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("member_pages", __name__)


@bp.get("/")
def index():
    return render_template("membership/index.html")

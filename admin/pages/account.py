"""Sign in and out, and the owner's API keys."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

import timeutil
from admin import auth
from admin.forms import ApiKeyForm, SignInForm
from admin.pages.blueprint import bp, paginate
from errors import CoursegateError
from extensions import db, limiter
from membership.auth import create_api_key
from membership.models import ApiKey
from security import safe_next


def _safe_next(target: str | None) -> str:
    """Only a path inside the admin: never an open redirect."""
    return safe_next(target, "admin.dashboard", under="/admin")


def _ip_limit() -> str:
    return current_app.config["ADMIN_LOGIN_RATE_LIMIT_IP"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"], error_message="Too many sign-in attempts from your network address. "
                                                          "Please wait a few minutes and try again.")
def login():
    form = SignInForm()
    if auth.current_owner() is not None and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    error = None
    status = 200
    retry_after = None
    if form.validate_on_submit():
        try:
            owner = auth.authenticate(db.session, form.email.data, form.password.data,
                                      client=request.remote_addr or "")
        except CoursegateError as failure:
            db.session.rollback()
            error, status = failure.message, failure.status
            if isinstance(failure, auth.SignInPaused):
                retry_after = failure.seconds
        else:
            auth.sign_in(owner)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 422
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return render_template("admin/login.html", form=form, error=error), status, headers


@bp.post("/logout")
def logout():
    auth.sign_out()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


@bp.get("/account")
def account():
    return render_template("admin/account.html")


@bp.post("/account/sign-out-everywhere")
def sign_out_everywhere():
    """Ends every session of this owner, on every browser, this one included."""
    auth.end_sessions(db.session, g.owner)
    auth.sign_out()
    flash("You are signed out everywhere. Sign in again to continue.")
    return redirect(url_for("admin.login"))


@bp.get("/api-keys")
def api_keys():
    page = paginate(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc()))
    return render_template("admin/api_keys.html", page=page, form=ApiKeyForm())


@bp.post("/api-keys")
def create_key():
    form = ApiKeyForm()
    if not form.validate():
        page = paginate(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc()))
        return render_template("admin/api_keys.html", page=page, form=form), 422
    row, key = create_api_key(db.session, form.name.data)
    # Rendered, not redirected: the key is in this one response and nowhere else (not in the session cookie).
    return render_template("admin/api_key_created.html", row=row, key=key)


@bp.post("/api-keys/<int:key_id>/revoke")
def revoke_key(key_id: int):
    row = db.session.get(ApiKey, key_id)
    if row is None:
        abort(404)
    if row.revoked_at is None:
        row.revoked_at = timeutil.now()
        flash(f"The key “{row.name}” ({row.prefix}…) is revoked; calls with it now fail.")
    return redirect(url_for("admin.api_keys"))

"""Member-facing pages (server-rendered): sign in by link or password, sign out, the account page.

Every form posts a CSRF token (checked before any view runs). Asking for a login link answers the
same way whether or not the email belongs to a member: the lookup and the email happen in a job after
the response, on a thread of their own (see ``jobs.dispatch_apart``).
"""

from __future__ import annotations

import marshmallow as ma
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

import jobs
from extensions import db, keep_private, limiter, protect_forms
from membership import account as account_facts
from membership import auth, login_links, services, tasks
from membership.forms import LoginRequestForm, PasswordLoginForm, SetPasswordForm, first_errors

bp = Blueprint("member_pages", __name__)


protect_forms(bp)
# Member pages carry personal data and CSRF tokens; login-link URLs must never leave as a Referer.
keep_private(bp)


@bp.errorhandler(CSRFError)
def _stale_form(error: CSRFError):
    message = ("This form was open too long or came from somewhere else. "
               "Please go back, reload the page and try again.")
    return render_template("errors/error.html", status=400, title="Please try again", message=message), 400


def _email_key() -> str:
    """Rate-limit key for "this email address", however it is capitalised or padded."""
    return "email:" + (request.form.get("email") or "").strip().lower()


def _ip_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_IP"]


def _email_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_EMAIL"]


TOO_MANY = "Too many sign-in attempts. Please wait a few minutes and try again."
login_limits = [
    limiter.limit(_ip_limit, methods=["POST"], error_message=TOO_MANY),
    limiter.limit(_email_limit, key_func=_email_key, methods=["POST"], error_message=TOO_MANY),
]


def rate_limited(view):
    for limit in login_limits:
        view = limit(view)
    return view


@bp.get("/")
def index():
    return render_template("membership/index.html")


@bp.route("/login", methods=["GET", "POST"])
@rate_limited
def login():
    """Ask for a login link by email."""
    if request.method == "GET":
        return render_template("membership/login.html", errors={}, email="")
    try:
        form = LoginRequestForm().load(request.form)
    except ma.ValidationError as error:
        return render_template("membership/login.html", errors=first_errors(error),
                               email=request.form.get("email", "")), 422
    email = form["email"].strip()
    # No lookup here: the job finds the member (or nobody) after the response has gone out, off this request's
    # thread, so neither this answer nor this worker's next one depends on whether the email is a member's.
    jobs.dispatch_apart(tasks.send_login_link, email)
    return render_template("membership/login_sent.html", email=email)


@bp.get("/login/<token>")
def open_link(token: str):
    """The one-click link from an email opens a page whose button signs in. Opening it uses nothing up, so the
    email security scanners that open every link cannot spend it."""
    if request.method == "HEAD":  # link checkers that only peek
        return "", 200
    outcome = login_links.peek(db.session, token)
    db.session.rollback()
    member = auth.current_member()
    if outcome.status in (login_links.OK, login_links.USED) and member is not None and member.id == outcome.member.id:
        return redirect(url_for("member_pages.account"))  # opened again on a device already signed in
    if outcome.status == login_links.OK:
        # Over HTTPS the CSRF check wants a same-site Referer on the button's POST; it goes nowhere else.
        return render_template("membership/link_confirm.html", member_name=outcome.member.name), 200, {
            "Referrer-Policy": "same-origin"}
    return _link_problem(outcome.status)


@bp.post("/login/<token>")
def follow_link(token: str):
    """The button on that page: uses the link (within its reuse window and uses) and lands on /account."""
    outcome = login_links.redeem(db.session, token)
    if outcome.status == login_links.OK:
        auth.sign_in(outcome.member)
        return redirect(url_for("member_pages.account"))
    db.session.rollback()
    member = auth.current_member()
    if outcome.status == login_links.USED and member is not None and member.id == outcome.member.id:
        return redirect(url_for("member_pages.account"))  # pressed again on a device already signed in
    return _link_problem(outcome.status)


def _link_problem(status: str):
    page = {
        login_links.EXPIRED: ("membership/link_expired.html", 410),
        login_links.USED: ("membership/link_used.html", 410),
    }.get(status, ("membership/link_invalid.html", 400))
    return render_template(page[0], errors={}, email=""), page[1]


@bp.post("/login/password")
@rate_limited
def password_login():
    """Sign in with an email and the password a member set on /account."""
    try:
        form = PasswordLoginForm().load(request.form)
    except ma.ValidationError as error:
        return render_template("membership/login.html", errors=first_errors(error),
                               email=request.form.get("email", ""), show_password=True), 422
    member = services.member_by_password(db.session, form["email"], form["password"])
    if member is None:
        message = "That email and password do not match. You can ask for a login link instead."
        return render_template("membership/login.html", errors={"password": message}, email=form["email"],
                               show_password=True), 401
    auth.sign_in(member)
    return redirect(url_for("member_pages.account"))


@bp.post("/logout")
def logout():
    auth.sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("member_pages.login"))


@bp.get("/account")
@auth.member_required
def account():
    """The member's levels and courses, notices, and the password form."""
    return _render_account(errors={})


def _render_account(errors: dict, status: int = 200):
    facts = account_facts.summary(db.session, g.member)
    return render_template("membership/account.html", account=facts, errors=errors,
                           sections=account_facts.extra_sections(db.session, g.member)), status


@bp.post("/account/password")
@auth.member_required
def set_password():
    try:
        form = SetPasswordForm().load(request.form)
    except ma.ValidationError as error:
        return _render_account(errors=first_errors(error), status=422)
    services.set_password(db.session, g.member, form["password"])
    auth.sign_in(g.member)  # the password ended every other session, not this one
    flash("Your password is set. You can now also sign in with it.", "info")
    return redirect(url_for("member_pages.account"))

"""Composition root: ``create_app(test_config=None)`` wires the domains together.

Settings come from defaults, then the environment (``config.from_environment`` for the contract
names, ``COURSEGATE_*`` for the rest), then ``test_config``.
"""

from __future__ import annotations

import importlib
import logging
import logging.config
import os

from flask import Flask, jsonify, render_template, request
from marshmallow import ValidationError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

import config
import security
import transactions
from errors import HTTP_CODES, CoursegateError, ErrorResponsesPlugin

logger = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/webhooks/")


def configure_logging() -> None:
    """Once per process, before the app exists: JSON lines unless COURSEGATE_LOG_FORMAT=plain."""
    if getattr(configure_logging, "done", False):
        return
    from observability import logging_config

    logging.config.dictConfig(logging_config(os.environ.get("COURSEGATE_LOG_LEVEL", "INFO"),
                                             os.environ.get("COURSEGATE_LOG_FORMAT", "json")))
    configure_logging.done = True  # type: ignore[attr-defined]


class Coursegate(Flask):
    """Flask with the request's transaction boundary (transactions.py): a view's work commits once, right after
    the view answered success."""

    def dispatch_request(self):
        rv = super().dispatch_request()
        transactions.commit_view(rv)
        return rv


def create_app(test_config: dict | None = None) -> Flask:
    configure_logging()
    # COURSEGATE_INSTANCE_PATH (absolute) keeps the database, secret and mail somewhere else than ./instance.
    app = Coursegate(__name__, instance_relative_config=True,
                     instance_path=os.environ.get("COURSEGATE_INSTANCE_PATH") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(config.DEFAULTS)
    app.config.from_mapping(config.from_environment(app.instance_path))
    app.config.from_prefixed_env("COURSEGATE")
    # from_prefixed_env strips the prefix (COURSEGATE_SITE_NAME -> SITE_NAME); code may read either name.
    for name in os.environ:
        if name.startswith("COURSEGATE_") and name.removeprefix("COURSEGATE_") in app.config:
            app.config[name] = app.config[name.removeprefix("COURSEGATE_")]
    if test_config:
        app.config.from_mapping(test_config)
        if "DATABASE_URL" in test_config:
            app.config["SQLALCHEMY_DATABASE_URI"] = config.database_uri(test_config["DATABASE_URL"])
    config.require_secret_key(app.config)
    config.size_pools(app.config, os.environ)

    app.json.sort_keys = False  # keep fields in schema order
    # Ids in URLs are database integers: a larger number matches no route (404), not a database error.
    app.url_map.converters["int"] = DatabaseIdConverter
    security.init_app(app)  # first: the HTTPS redirect (when on) comes before every other hook
    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    register_error_handlers(app)
    return app


def register_extensions(app: Flask) -> None:
    import billing
    import jobs
    import observability
    from emails.transport import mail
    from extensions import OptionalBodiesPlugin, api, csrf, db, limiter, migrate
    from membership import access_tokens

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"),
                     render_as_batch=True, compare_type=True)
    mail.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    jobs.init_app(app)
    observability.init_app(app)
    billing.init_app(app)
    access_tokens.init_app(app)
    api.init_app(app, spec_kwargs={
        "extra_plugins": [ErrorResponsesPlugin(), OptionalBodiesPlugin()],
        "info": {"description": "Coursegate's owner API. Authenticate with `Authorization: Bearer <api key>`."},
    })
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme("memberSession", {"type": "apiKey", "in": "cookie", "name": "session"})
    # Importing the models registers every table on the metadata (migrations and create_all need all).
    import admin.models  # noqa: F401
    import emails.models  # noqa: F401
    import fulfillment.models  # noqa: F401
    import keap.models  # noqa: F401
    import membership.models  # noqa: F401
    import schedule  # periodic_job_runs, and the task modules below
    import automations.models  # noqa: F401
    import membership.tags  # noqa: F401
    import billing.models  # noqa: F401
    # Every Celery task is registered (services queue jobs by task name), and every domain listener is
    # connected to the signals it hears (signals.py).
    for module in schedule.TASK_MODULES:
        importlib.import_module(module)
    import automations.listeners  # noqa: F401
    import keap.listeners  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from admin.pages import bp as admin_pages
    from automations.api import blp as automations_api
    from billing import account_links as billing_links
    from billing.api import blp as billing_api
    from billing import billing_page
    from billing.invitation_api import blp as card_invitations_api
    from billing.invitation_pages import bp as card_invitation_pages
    from billing.gateways.sandbox import bp as sandbox_gateway
    from billing.pages import bp as billing_pages
    from emails.api import blp as emails_api
    from extensions import api
    from fulfillment import account_links as fulfillment_links
    from fulfillment import batches as fulfillment_batches
    from fulfillment.api import blp as fulfillment_api
    from fulfillment.webhooks import bp as webhooks
    from fulfillment.webhooks import document as document_webhooks
    from keap.pages import bp as keap_pages
    from membership import auth
    from membership.access_api import blp as access_api
    from membership.api import blp as membership_api
    from membership import member_api as member_token_keys
    from membership.member_api import blp as member_api
    from membership.pages import bp as member_pages

    # The JSON API (documented in the OpenAPI spec).
    for blueprint in (membership_api, access_api, fulfillment_api, automations_api, billing_api, member_api,
                      emails_api, billing_page.blp, card_invitations_api):
        api.register_blueprint(blueprint)
    # emails imports no other domain, so the owner-key check is attached here, for this app only.
    app.before_request_funcs.setdefault(emails_api.name, []).append(auth.require_owner)

    # Cart webhooks, member pages, the owner's admin.
    for blueprint in (webhooks, member_pages, billing_pages, sandbox_gateway, keap_pages, admin_pages,
                      billing_page.bp, card_invitation_pages, member_token_keys.keys_bp):
        app.register_blueprint(blueprint)
    document_webhooks(app, api.spec)
    member_token_keys.document(app, api.spec)

    # This app's group-commit receiver for cart deliveries.
    fulfillment_batches.init_app(app)
    # /account, for this app: the past-due notice's card-update links and billing's sections.
    fulfillment_links.init_app(app)
    billing_links.init_app(app)

    # Every owner API operation needs the bearer key; document it once for the whole spec.
    api.spec.options["security"] = [{"bearerAuth": []}]


class DatabaseIdConverter(IntegerConverter):
    """``<int:...>`` bounded to the database's integer (PostgreSQL ``integer``: 2**31 - 1)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def register_cli(app: Flask) -> None:
    from admin.cli import owners_cli
    from automations.cli import automations_cli
    from billing.cli import billing_cli
    from emails.cli import emails_cli
    from encryption import secrets_cli
    from fulfillment.cli import webhooks_cli
    from membership.cli import api_keys_cli, members_cli
    from schedule import jobs_cli

    for group in (api_keys_cli, members_cli, emails_cli, jobs_cli, automations_cli, webhooks_cli, owners_cli,
                  billing_cli, secrets_cli):
        app.cli.add_command(group)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.path in ("/healthz", "/readyz", "/metrics")


def register_error_handlers(app: Flask) -> None:
    from extensions import db

    def page(status: int, title: str, message: str):
        return render_template("errors/error.html", status=status, title=title, message=message), status

    @app.errorhandler(CoursegateError)
    def domain_error(error: CoursegateError):
        db.session.rollback()
        if wants_json():
            return jsonify(error.to_dict()), error.status
        return page(error.status, "Something is not right", error.message)

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        db.session.rollback()
        body = {"code": "validation_error", "message": "Some fields are missing or invalid.",
                "errors": error.normalized_messages()}
        return jsonify(body), 422

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        if not wants_json():
            return page(status, error.name, error.description or "")
        body: dict = {"code": HTTP_CODES.get(status, f"http_{status}"), "message": error.description or error.name}
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages")
        if messages:
            # webargs nests by location ({"json": {...}}, {"query": {...}}); the location is noise to a client.
            flat: dict = {}
            for location, location_errors in messages.items():
                if isinstance(location_errors, dict):
                    flat.update(location_errors)
                else:
                    flat[location] = location_errors
            body["errors"] = flat
            if status == 422:
                body["message"] = "Some fields are missing or invalid."
            elif status == 400 and "json" in messages:
                body.update(code="invalid_json", message="The request body is not valid JSON.")
        response = error.get_response()
        response.data = app.json.dumps(body)
        response.content_type = "application/json"
        return response

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def value_out_of_range(error: Exception):
        # A number from the request too large for the database's columns (a page or an id in the query
        # string, say): the client's input, not our failure.
        db.session.rollback()
        message = "A value in the request is out of range."
        if wants_json():
            return jsonify(code="value_out_of_range", message=message), 422
        return page(422, "Something is not right", message)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):  # pragma: no cover - handled above
            return http_error(error)
        logger.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        if wants_json():
            return jsonify(code="internal_error", message="Something went wrong on our side; it has been logged."), 500
        return page(500, "Something went wrong", "It has been logged; please try again in a moment.")

    app.register_error_handler(InternalServerError, unexpected)

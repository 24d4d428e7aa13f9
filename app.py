"""Composition root: ``create_app(test_config=None)`` wires the domains together.

Settings come from defaults, then the environment (``config.from_environment`` for the contract
names, ``COURSEGATE_*`` for the rest), then ``test_config``.
"""

from __future__ import annotations

import logging
import logging.config
import os

from flask import Flask, jsonify, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError

import config
from errors import HTTP_CODES, CoursegateError

logger = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/webhooks/")


def configure_logging() -> None:
    if logging.getLogger().handlers:
        return
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"level": os.environ.get("COURSEGATE_LOG_LEVEL", "INFO"), "handlers": ["console"]},
    })


def create_app(test_config: dict | None = None) -> Flask:
    configure_logging()
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(config.DEFAULTS)
    app.config.from_mapping(config.from_environment(app.instance_path))
    app.config.from_prefixed_env("COURSEGATE")
    if test_config:
        app.config.from_mapping(test_config)
        if "DATABASE_URL" in test_config:
            app.config["SQLALCHEMY_DATABASE_URI"] = config.database_uri(test_config["DATABASE_URL"])

    app.json.sort_keys = False  # keep fields in schema order
    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    register_error_handlers(app)
    return app


def register_extensions(app: Flask) -> None:
    import jobs
    from emails.transport import mail
    from extensions import api, csrf, db, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"),
                     render_as_batch=True, compare_type=True)
    mail.init_app(app)
    csrf.init_app(app)
    jobs.init_app(app)
    api.init_app(app, spec_kwargs={
        "info": {"description": "Coursegate's owner API. Authenticate with `Authorization: Bearer <api key>`."},
    })
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    # Importing the models registers every table on the metadata (migrations and create_all need all).
    import emails.models  # noqa: F401
    import fulfillment.models  # noqa: F401
    import membership.models  # noqa: F401
    import billing.models  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from extensions import api
    from fulfillment.api import blp as fulfillment_api
    from membership.api import blp as membership_api
    from membership.pages import bp as member_pages
    import billing
    from billing.api import blp as billing_api
    from billing.gateways.sandbox import bp as sandbox_gateway
    from billing.pages import bp as billing_pages

    for blueprint in (membership_api, fulfillment_api):
        api.register_blueprint(blueprint)
    app.register_blueprint(member_pages)
    billing.init_app(app)
    api.register_blueprint(billing_api)
    app.register_blueprint(billing_pages)
    app.register_blueprint(sandbox_gateway)

    # Every owner API operation needs the bearer key; document it once for the whole spec.
    api.spec.options["security"] = [{"bearerAuth": []}]

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")


def register_cli(app: Flask) -> None:
    from emails.cli import emails_cli
    from membership.cli import api_keys_cli, members_cli
    from billing.cli import billing_cli

    for group in (api_keys_cli, members_cli, emails_cli):
        app.cli.add_command(group)
    app.cli.add_command(billing_cli)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.path == "/healthz"


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

"""Configuration from the environment, parsed strictly.

The names below are the product's contract (see README): ``DATABASE_URL``, ``SECRET_KEY``,
``SECRET_KEY_FALLBACKS``, ``SITE_URL``, ``MAIL_*`` and ``CELERY_BROKER_URL``. Anything else is read
with the ``COURSEGATE_`` prefix by ``app.config.from_prefixed_env``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from email.utils import formataddr
from typing import Mapping
from urllib.parse import urlsplit

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    pass


def parse_boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")


def parse_int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def database_uri(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs (what operators paste)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def instance_secret(instance_path: str) -> str:
    """A development secret generated on first start and kept under ``instance/``: never a constant."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def default_sender(site_name: str, site_url: str) -> str:
    """``Site name <no-reply@site domain>`` when MAIL_DEFAULT_SENDER is not set: members see who wrote.
    A site served from an address or a bare host name (the embedded default) sends from ``localhost``."""
    host = (urlsplit(site_url).hostname or "").lower()
    is_domain = "." in host and not host.replace(".", "").isdigit() and ":" not in host
    return formataddr((site_name, f"no-reply@{host if is_domain else 'localhost'}"))


def is_production(env: Mapping[str, str]) -> bool:
    """``COURSEGATE_ENV=production`` (or ``development``) says so; otherwise PostgreSQL means production."""
    declared = env.get("COURSEGATE_ENV", "").strip().lower()
    if declared not in ("", "production", "development"):
        raise ConfigError(f"COURSEGATE_ENV must be 'production' or 'development', got {declared!r}")
    if declared:
        return declared == "production"
    return database_uri(env.get("DATABASE_URL", "")).startswith("postgresql")


def require_secret_key(settings: Mapping) -> None:
    if not settings.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY is not set. In production (COURSEGATE_ENV=production, or DATABASE_URL on "
                          "PostgreSQL) every host must share one SECRET_KEY: set it in the environment (see "
                          "docs/deploy.md). COURSEGATE_ENV=development generates one under instance/ instead.")


def instance_signing_key(instance_path: str) -> bytes:
    """The embedded default's member-token signing key (an Ed25519 private key, PEM), generated on first use and
    kept under ``instance/``. Written whole under a temporary name and linked into place, so two processes
    starting together both end up reading the one key that won."""
    path = Path(instance_path) / "member_token_key.pem"
    if path.exists():
        return path.read_bytes()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes()


def size_pools(settings: dict, env: Mapping[str, str]) -> None:
    """PostgreSQL: keep open as many connections per engine as the process has request threads
    (``COURSEGATE_DB_POOL_SIZE``; gunicorn.conf.py sets it to its thread count plus two, default 10). SQLAlchemy
    keeps 5 and closes any beyond them when returned, so with 8 threads every request past the fifth opened and
    closed a connection of its own, a PostgreSQL backend each (bench/access.py: 544 in one run)."""
    if not str(settings.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        return  # SQLite's pools take no size
    size = parse_int("COURSEGATE_DB_POOL_SIZE", env.get("COURSEGATE_DB_POOL_SIZE", "10"))
    if size < 1:
        raise ConfigError(f"COURSEGATE_DB_POOL_SIZE must be at least 1, got {size}")
    options = dict(settings.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("pool_size", size)
    settings["SQLALCHEMY_ENGINE_OPTIONS"] = options


def rate_limit_storage(env: Mapping[str, str]) -> str:
    """Flask-Limiter's storage: Redis when configured (shared by every worker), else per-process memory."""
    return env.get("COURSEGATE_RATELIMIT_STORAGE_URI") or env.get("CELERY_BROKER_URL") or "memory://"


def per_process_limits_problem(env: Mapping[str, str], workers: int) -> str | None:
    """Why ``workers`` processes would not share their rate limits, or None when they do (or are one)."""
    if workers <= 1 or not rate_limit_storage(env).startswith("memory://"):
        return None
    if env.get("COURSEGATE_RATELIMIT_ENABLED", "").strip().lower() in FALSE - {""}:
        return None
    return (f"{workers} workers would each count rate limits on their own (no COURSEGATE_RATELIMIT_STORAGE_URI "
            f"or CELERY_BROKER_URL), so /login and /admin/login would allow {workers} times their limits. Set "
            "COURSEGATE_RATELIMIT_STORAGE_URI=redis://host:6379/1, or run one worker, or set "
            "COURSEGATE_RATELIMIT_PER_PROCESS=1 to accept per-process limits.")


def from_environment(instance_path: str, environ: Mapping[str, str] | None = None) -> dict:
    env = os.environ if environ is None else environ
    site_url = env.get("SITE_URL", "http://127.0.0.1:5000").rstrip("/")
    settings: dict = {
        "SQLALCHEMY_DATABASE_URI": database_uri(
            env.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'coursegate.sqlite3'}"
        ),
        "SITE_URL": site_url,
        "SITE_NAME": env.get("COURSEGATE_SITE_NAME", "").strip() or "Coursegate",
        "MAIL_SERVER": env.get("MAIL_SERVER") or None,
        "MAIL_PORT": parse_int("MAIL_PORT", env.get("MAIL_PORT", "25")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": parse_boolean("MAIL_USE_TLS", env.get("MAIL_USE_TLS", "false")),
        # None: emails.transport sends as default_sender(SITE_NAME, SITE_URL).
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER") or None,
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL") or None,
        "SESSION_COOKIE_SECURE": site_url.startswith("https://"),
        "RATELIMIT_STORAGE_URI": rate_limit_storage(env),
    }
    settings["PRODUCTION"] = is_production(env)
    if env.get("SECRET_KEY"):
        settings["SECRET_KEY"] = env["SECRET_KEY"]
    elif not settings["PRODUCTION"]:
        settings["SECRET_KEY"] = instance_secret(instance_path)
    # In production a missing SECRET_KEY stays missing: create_app refuses to start (require_secret_key), since
    # a key generated per host makes every link and session from one host fail on the others.
    fallbacks = [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    settings["SECRET_KEY_FALLBACKS"] = fallbacks
    return settings


DEFAULTS = {
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # flask-smorest: the spec is served at /api/v1/openapi.json
    "API_TITLE": "Coursegate",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    # Embedded default: jobs run in-process after the response; a broker turns them into Celery tasks.
    "COURSEGATE_MAIL_DIR": None,  # default: <instance>/mail
    "MAIL_TIMEOUT": 10,
    "TRUSTED_PROXIES": 0,  # COURSEGATE_TRUSTED_PROXIES: how many reverse proxies set X-Forwarded-*
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # carts send kilobytes; anything this large is not a delivery
    "WTF_CSRF_CHECK_DEFAULT": False,  # page blueprints call csrf.protect() themselves
    # Login links (seconds; settable as COURSEGATE_<NAME>): the welcome email's link, a /login link, how long a
    # followed link keeps working (email scanners follow it first) and how often within that window.
    "WELCOME_LINK_MAX_AGE": 7 * 24 * 3600,
    "LOGIN_LINK_MAX_AGE": 3600,
    "LOGIN_LINK_REUSE_WINDOW": 600,
    "LOGIN_LINK_MAX_USES": 5,
    # Asking for a login link or trying a password (Flask-Limiter syntax).
    "LOGIN_RATE_LIMIT_IP": "20 per hour;5 per minute",
    "LOGIN_RATE_LIMIT_EMAIL": "5 per hour",
    # Owner sign-in: attempts per client address, and wrong passwords for one account from one address
    # before that address must wait (other addresses, and so the owner elsewhere, are not affected).
    "ADMIN_LOGIN_RATE_LIMIT_IP": "10 per minute;50 per hour",
    "ADMIN_LOGIN_FAILURES": "5 per 15 minutes",
    # With the limits' storage (Redis) unreachable, count in this process's memory and log it, rather than
    # failing the request; Flask-Limiter goes back to the storage when it answers again.
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    "RATELIMIT_SWALLOW_ERRORS": True,
    # COURSEGATE_FORCE_HTTPS: redirect plain HTTP to HTTPS and send HSTS (production behind TLS; see docs/deploy.md).
    "FORCE_HTTPS": False,
    "PERMANENT_SESSION_LIFETIME": 30 * 24 * 3600,
    # COURSEGATE_MEMBER_SESSION_DAYS: a member stays signed in this long after signing in (then a new link).
    "MEMBER_SESSION_DAYS": 30,
    # Member access tokens (POST /api/v1/me/access-token; settable as COURSEGATE_<NAME>): seconds a token is valid;
    # the signing key (PEM, or the path of a PEM file; default: generated under instance/); former keys still
    # published at /.well-known/jwks.json (PEMs or paths, comma-separated; public keys are enough).
    "MEMBER_TOKEN_MAX_AGE": 300,
    "MEMBER_TOKEN_KEY": None,
    "MEMBER_TOKEN_KEY_FALLBACKS": None,
}

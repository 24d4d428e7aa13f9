"""What keeps hostile input and other sites out: where a ``next`` may lead, which client address to believe,
and the security headers on every page (Flask-Talisman).

``init_app`` is called by the app factory; the helpers are used by the page blueprints. (Rate limits: the
limiter in ``extensions.py``, its storage in ``config.py``, the start-up check in ``gunicorn.conf.py``.)
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import Flask, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from config import ConfigError


def init_app(app: Flask) -> None:
    _trust_proxies(app)
    _headers(app)
    app.session_interface = SessionCookies()


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, with its signer made once per key rather than on every request (a
    twentieth of an access check's CPU, even without a cookie to read)."""

    def __init__(self):
        self._signers: dict[tuple, object] = {}

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        signer = self._signers.get(keys)
        if signer is None:
            signer = self._signers[keys] = super().get_signing_serializer(app)
        return signer


def safe_next(target: str | None, default: str, *, under: str = "/") -> str:
    """``target`` when it is a path on this site (below ``under``), else the URL of ``default`` (an endpoint).

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so ``/\\t/evil.example`` and
    ``/\\evil.example`` lead off-site: a target with any of those, or with a scheme or host, is not followed.
    """
    if isinstance(target, str) and _below(target, under) and _plain_path(target):
        return target
    return url_for(default)


def _below(target: str, under: str) -> bool:
    prefix = under.rstrip("/")
    return not prefix or target == prefix or target.startswith((prefix + "/", prefix + "?"))


def _plain_path(target: str) -> bool:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


# --- the client's address behind reverse proxies -----------------------------------------------------------


def trusted_proxies(value) -> int | list[str]:
    """``COURSEGATE_TRUSTED_PROXIES``: a number of proxy hops (``1``), or the proxies' addresses or networks
    (``10.0.0.2,10.0.1.0/24``, or a JSON list). ``0``, empty or unset trusts no proxy."""
    if value in (None, "", 0, False):
        return 0
    if isinstance(value, bool) or isinstance(value, float):
        raise ConfigError(f"TRUSTED_PROXIES must be a number of hops or a list of addresses, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"TRUSTED_PROXIES must not be negative, got {value!r}")
        return value
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(item).strip() for item in items if str(item).strip()]
    if len(items) == 1 and items[0].isdigit():
        return int(items[0])
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXIES: {item!r} is not an IP address or network") from None
    return items


class ListedProxies:
    """WSGI middleware believing ``X-Forwarded-*`` only from the listed proxies: the client is the right-most
    ``X-Forwarded-For`` address that is not one of them (so a client cannot claim an address by sending the
    header itself), and scheme and host come from the last proxy."""

    def __init__(self, wsgi_app, proxies: list[str]):
        self.wsgi_app = wsgi_app
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            client = next((hop for hop in reversed(hops) if not self._trusted(hop)), hops[0] if hops else None)
            if client:
                environ["REMOTE_ADDR"] = client
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            host = environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[-1].strip()
            if host:
                environ["HTTP_HOST"] = host
        return self.wsgi_app(environ, start_response)


def _trust_proxies(app: Flask) -> None:
    trusted = trusted_proxies(app.config.get("TRUSTED_PROXIES"))
    if isinstance(trusted, int) and trusted:
        # Behind N reverse proxies: the client's address (per-IP rate limits, logs) and scheme come from
        # their X-Forwarded-* headers. Never set this without a proxy, or clients could claim any address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)  # type: ignore[method-assign]
    elif trusted:
        app.wsgi_app = ListedProxies(app.wsgi_app, trusted)  # type: ignore[method-assign]


def came_through_a_proxy() -> bool:
    """The request names a forwarded client: whatever its socket address, it is not a local caller."""
    return any(request.headers.get(name) for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))


# --- security headers (Flask-Talisman) ---------------------------------------------------------------------

# Templates carry <style> blocks and style="" attributes (nonces cannot cover attributes), so styles may be
# inline; scripts never are: admin.js is a static file, and nothing else runs but the Keap card component.
PAGE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: https:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
# The admin posts only to itself; member pages' forms may end on a payment provider's hosted page (a redirect
# after the post, which form-action would block).
ADMIN_POLICY = {**PAGE_POLICY, "form-action": "'self'"}
# Keap's hosted payment component: its script, and the frames and calls it makes to take the card.
KEAP_CARD_POLICY = {**PAGE_POLICY, "script-src": "'self' https://payments.keap.page",
                    "style-src": "'self' 'unsafe-inline' https://payments.keap.page",
                    "frame-src": "https:", "connect-src": "'self' https:", "font-src": "'self' https: data:"}
# endpoint -> policy; everything else gets PAGE_POLICY. Blueprints are named by their prefix ("admin.").
POLICIES = {"admin.": ADMIN_POLICY, "keap_pages.card": KEAP_CARD_POLICY}
# Probes and scrapers talk plain HTTP to the process; the HTTPS redirect would send them away.
NO_HTTPS_REDIRECT = {"healthz", "readyz", "metrics"}


def policy_for(endpoint: str | None) -> dict:
    endpoint = endpoint or ""
    for prefix, policy in POLICIES.items():
        if endpoint == prefix or (prefix.endswith(".") and endpoint.startswith(prefix)):
            return policy
    return PAGE_POLICY


class _Talisman(Talisman):
    """Flask-Talisman with its per-view options chosen by endpoint (``policy_for``) rather than stored on the
    view functions, which every app in the process shares (Talisman's decorator writes defaults into them).
    The options are worked out once per endpoint, and each policy's header once (no nonces: it is the same on
    every response): Talisman did both three times a request, a twentieth of a ``/healthz`` request's CPU."""

    def __init__(self, *args, **kwargs):
        self._options_by_endpoint: dict[str | None, dict] = {}
        self._headers_by_policy: dict[int, tuple] = {}
        super().__init__(*args, **kwargs)

    def _get_local_options(self):
        endpoint = request.endpoint
        options = self._options_by_endpoint.get(endpoint)
        if options is None:
            options = self._options_by_endpoint[endpoint] = {
                "force_https": self.force_https and endpoint not in NO_HTTPS_REDIRECT,
                "frame_options": self.frame_options,
                "frame_options_allow_from": self.frame_options_allow_from,
                "content_security_policy": policy_for(endpoint),
                "content_security_policy_nonce_in": self.content_security_policy_nonce_in,
                "permissions_policy": self.permissions_policy,
                "document_policy": self.document_policy,
                "feature_policy": self.feature_policy,
            }
        return options

    def _parse_policy(self, policy):
        if self.content_security_policy_nonce_in:
            return super()._parse_policy(policy)
        known = self._headers_by_policy.get(id(policy))
        if known is None or known[0] is not policy:  # kept with its policy, so a reused id cannot match
            known = self._headers_by_policy[id(policy)] = (policy, super()._parse_policy(policy))
        return known[1]


def _headers(app: Flask) -> None:
    force_https = bool(app.config.get("FORCE_HTTPS"))
    app.extensions["talisman"] = _Talisman(
        app,
        force_https=force_https,
        strict_transport_security=force_https,  # an operator who redirects to HTTPS has committed to it
        frame_options="DENY",
        content_security_policy=PAGE_POLICY,
        # Same-site requests keep their Referer (Flask-WTF checks it on HTTPS posts); other sites never see
        # our URLs, which may hold a login or invoice token.
        referrer_policy="same-origin",
        # SESSION_COOKIE_SECURE follows SITE_URL (config.py); Talisman would force it on plain HTTP too.
        session_cookie_secure=False,
        session_cookie_samesite=app.config.get("SESSION_COOKIE_SAMESITE", "Lax"),
    )

    @app.after_request
    def _no_store(response):
        # Pages and API answers carry personal data, CSRF tokens or tokens in their URL: no cache keeps them.
        # Static files (stylesheets, admin.js) may be cached; a view that allows caching says so itself.
        if not (request.endpoint or "").endswith("static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

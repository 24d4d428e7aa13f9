"""What keeps hostile input and other sites out: where a ``next`` may lead, which client address to believe,
the security headers on every page (Flask-Talisman) and rate limits that hold across processes.

``init_app`` is called by the app factory; the helpers are used by the page blueprints.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import url_for


def safe_next(target: str | None, default: str, *, under: str = "/") -> str:
    """``target`` when it is a path on this site (below ``under``), else the URL of ``default`` (an endpoint).

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so ``/\\t/evil.example`` and
    ``/\\evil.example`` lead off-site: a target with any of those, or with a scheme or host, is not followed.
    """
    if isinstance(target, str) and target.startswith(under) and _plain_path(target):
        return target
    return url_for(default)


def _plain_path(target: str) -> bool:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc

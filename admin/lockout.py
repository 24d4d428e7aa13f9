"""Wrong owner passwords, counted per (account, client address) in the rate limits' storage.

A client that gets an account's password wrong ``ADMIN_LOGIN_FAILURES`` times (default 5 per 15 minutes) must
wait until that window ends before it may try that account again. Nobody else is affected: the owner signing in
from another address, even while someone elsewhere guesses, gets in with the right password. (A global lock
would let anyone who knows an owner's email lock them out.) Unknown emails are counted the same way, so the
pause says nothing about which emails are owners. Setting a password (``flask owners set-password``) starts
every count for that account afresh.

The counts live where Flask-Limiter's do (``RATELIMIT_STORAGE_URI``: Redis in production, shared by every
worker); with that storage unreachable they are kept in this process's memory meanwhile, and that is logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

logger = logging.getLogger(__name__)

RETRY_STORAGE_AFTER = 60  # seconds between attempts to reach a storage that failed


@dataclass
class FailureCounter:
    storage: Storage
    memory: FixedWindowRateLimiter = field(default_factory=lambda: FixedWindowRateLimiter(MemoryStorage()))
    failed_at: float | None = None

    def _call(self, name: str, item: RateLimitItem, *identifiers: str):
        if self.failed_at is None or time.monotonic() - self.failed_at > RETRY_STORAGE_AFTER:
            try:
                result = getattr(FixedWindowRateLimiter(self.storage), name)(item, *identifiers)
            except Exception:  # any storage error: a sign-in must not fail because Redis did
                if self.failed_at is None:
                    logger.warning("rate-limit storage unreachable: counting owner sign-in failures in memory")
                self.failed_at = time.monotonic()
            else:
                if self.failed_at is not None:
                    logger.info("rate-limit storage reachable again: owner sign-in failures counted there")
                self.failed_at = None
                return result
        return getattr(self.memory, name)(item, *identifiers)

    def allowed(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._call("test", item, *identifiers)

    def fail(self, item: RateLimitItem, *identifiers: str) -> None:
        self._call("hit", item, *identifiers)

    def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        self._call("clear", item, *identifiers)

    def seconds_left(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = self._call("get_window_stats", item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _counter() -> FailureCounter:
    counters = current_app.extensions.setdefault("owner_signin_failures", {})
    uri = current_app.config.get("RATELIMIT_STORAGE_URI") or "memory://"
    if uri not in counters:
        counters[uri] = FailureCounter(storage_from_string(uri))
    return counters[uri]


def _limit() -> RateLimitItem:
    return parse(current_app.config["ADMIN_LOGIN_FAILURES"])


def _identifiers(email: str, password_hash: str | None, client: str) -> tuple[str, ...]:
    # The password's hash (hashed again: never stored as is) names the count, so a new password starts afresh.
    generation = hashlib.sha256(password_hash.encode()).hexdigest()[:16] if password_hash else "-"
    return "owner-signin", email, generation, client or "unknown"


def seconds_paused(email: str, password_hash: str | None, client: str) -> int | None:
    """How long this client must wait before trying this account again, or None when it may try now."""
    ids = _identifiers(email, password_hash, client)
    counter = _counter()
    if counter.allowed(_limit(), *ids):
        return None
    return counter.seconds_left(_limit(), *ids)


def record_failure(email: str, password_hash: str | None, client: str) -> int | None:
    """Count a wrong password; returns how long the client is now paused, or None when it may try again."""
    _counter().fail(_limit(), *_identifiers(email, password_hash, client))
    return seconds_paused(email, password_hash, client)


def forget_failures(email: str, password_hash: str | None, client: str) -> None:
    _counter().clear(_limit(), *_identifiers(email, password_hash, client))

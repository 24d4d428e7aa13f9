"""The one client module for Keap's REST v2 (https://api.keap.com/crm/rest/v2/...).

- Authenticates with a service-account key (``COURSEGATE_KEAP_API_KEY``) sent as ``X-Keap-API-Key``.
- Every call has a timeout (``COURSEGATE_KEAP_TIMEOUT``, seconds, default 5).
- A client-side token bucket keeps us under Keap's per-key throttle (``COURSEGATE_KEAP_RATE_PER_SECOND``,
  default 4): in-process and shared by every thread, or shared by every process through Redis when
  ``COURSEGATE_RATELIMIT_STORAGE_URI`` or ``CELERY_BROKER_URL`` is a ``redis://`` URL.
- 429 and 5xx are retried a bounded number of times with exponential backoff, honouring ``Retry-After``.
- Errors are parsed leniently (Keap's v2 ``Error`` body, whose ``code`` may arrive as the string ``"429"``)
  and raised as :mod:`keap.errors` domain errors.

Logs carry the method, the path (ids only: never the query, which holds emails) and Keap's status and code;
never the key, request or response bodies, card data or payment-component session keys.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from flask import current_app

from config import parse_boolean
from keap.errors import (
    KeapAuthError,
    KeapError,
    KeapNotConfigured,
    KeapNotFound,
    KeapRateLimited,
    KeapUnavailable,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.keap.com/crm"
TOO_SLOW = "Keap did not answer in time; please try again in a few minutes."
MAX_PAGES = 50  # a runaway next_page_token never loops forever


# Set by deadline(): the moment (time.monotonic) by which a whole page's worth of calls must be done.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("keap_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every call inside the block (timeouts, retries, waits) to ``seconds`` in total, so a page
    that makes several calls to a slow Keap still answers in time."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining() -> float | None:
    until = _deadline.get()
    return None if until is None else until - time.monotonic()


def _fits(delay: float) -> bool:
    remaining = _remaining()
    return remaining is None or delay < remaining


def _sleep(seconds: float) -> None:
    """Module-level so tests can replace the waiting without touching the logic."""
    time.sleep(seconds)


# --- settings ---------------------------------------------------------------------------------------

def setting(config: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``KEAP_<NAME>`` (what ``COURSEGATE_KEAP_<NAME>`` in the environment becomes), or the prefixed key."""
    for key in (f"KEAP_{name}", f"COURSEGATE_KEAP_{name}"):
        if config.get(key) is not None:
            return config[key]
    return default


def bool_setting(config: Mapping[str, Any], name: str, default: bool) -> bool:
    value = setting(config, name, default)
    return value if isinstance(value, bool) else parse_boolean(f"COURSEGATE_KEAP_{name}", str(value))


@dataclass(frozen=True)
class KeapSettings:
    api_key: str | None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 5.0
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 4.0
    retry_after_max: float = 10.0  # a longer Retry-After is not waited for: we give up and say so
    rate_per_second: float = 4.0
    burst: int = 4
    max_wait: float = 10.0  # longest wait for a token before giving up
    redis_url: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> KeapSettings:
        redis_url = None
        for key in ("RATELIMIT_STORAGE_URI", "COURSEGATE_RATELIMIT_STORAGE_URI", "CELERY_BROKER_URL"):
            value = config.get(key)
            if isinstance(value, str) and value.startswith(("redis://", "rediss://")):
                redis_url = value
                break
        key = setting(config, "API_KEY")
        return cls(
            api_key=str(key) if key not in (None, "") else None,
            base_url=str(setting(config, "BASE_URL", DEFAULT_BASE_URL)).rstrip("/"),
            timeout=float(setting(config, "TIMEOUT", 5.0)),
            max_retries=int(setting(config, "MAX_RETRIES", 2)),
            backoff_base=float(setting(config, "BACKOFF_BASE", 0.5)),
            backoff_max=float(setting(config, "BACKOFF_MAX", 4.0)),
            retry_after_max=float(setting(config, "RETRY_AFTER_MAX", 10.0)),
            rate_per_second=float(setting(config, "RATE_PER_SECOND", 4.0)),
            burst=int(setting(config, "RATE_BURST", 4)),
            max_wait=float(setting(config, "RATE_MAX_WAIT", 10.0)),
            redis_url=redis_url,
        )

    def __repr__(self) -> str:  # never print the key
        return f"KeapSettings(base_url={self.base_url!r}, api_key={'set' if self.api_key else 'unset'})"


# --- rate limiting ----------------------------------------------------------------------------------

class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; thread-safe.

    Each call reserves a token (the balance may go below zero) and is told how long to wait for it, so
    waiting threads are served in arrival order without polling.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.lock = threading.Lock()

    def reserve(self, max_wait: float) -> float:
        """Seconds to wait before using the reserved token; raises KeapRateLimited beyond ``max_wait``."""
        with self.lock:
            moment = self.clock()
            self.tokens = min(float(self.burst), self.tokens + (moment - self.updated) * self.rate)
            self.updated = moment
            wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
            if wait > max_wait:
                raise KeapRateLimited()
            self.tokens -= 1
            return wait

    def acquire(self, max_wait: float) -> None:
        wait = self.reserve(max_wait)
        if wait > 0:
            _sleep(wait)


# Token bucket in Redis: one bucket for every process using the same key. Returns the wait (seconds, as
# a string: Lua numbers become integers otherwise) or "-1" when the wait would exceed ARGV[3].
_REDIS_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
if wait > max_wait then return '-1' end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 60)
return tostring(wait)
"""


class RedisTokenBucket:
    """The same bucket kept in Redis; falls back to the in-process bucket while Redis cannot be reached."""

    def __init__(self, url: str, key: str, rate: float, burst: int, fallback: TokenBucket):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_REDIS_BUCKET)
        self.key = key
        self.rate = rate
        self.burst = burst
        self.fallback = fallback
        self.warned = False

    def acquire(self, max_wait: float) -> None:
        import redis

        try:
            wait = float(self.script(keys=[self.key], args=[self.rate, self.burst, max_wait]))
        except redis.RedisError:
            if not self.warned:  # the URL may hold a password: never log it
                logger.warning("keap rate limit: Redis unreachable, limiting in-process instead")
                self.warned = True
            self.fallback.acquire(max_wait)
            return
        if wait < 0:
            raise KeapRateLimited()
        if wait > 0:
            _sleep(wait)


_buckets: dict[tuple, TokenBucket | RedisTokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(settings: KeapSettings) -> TokenBucket | RedisTokenBucket:
    """One bucket per API key (Keap throttles per key) for the whole process, whatever app built it."""
    key_id = hashlib.sha256((settings.api_key or "").encode()).hexdigest()[:16]
    ident = (key_id, settings.rate_per_second, settings.burst, settings.redis_url)
    with _buckets_lock:
        bucket = _buckets.get(ident)
        if bucket is None:
            local = TokenBucket(settings.rate_per_second, settings.burst)
            if settings.redis_url:
                bucket = RedisTokenBucket(settings.redis_url, f"coursegate:keap:bucket:{key_id}",
                                          settings.rate_per_second, settings.burst, local)
            else:
                bucket = local
            _buckets[ident] = bucket
        return bucket


# --- errors -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeapErrorBody:
    status: int
    code: str | None
    message: str | None
    keap_status: str | None

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 or self.code == "429"


def parse_error(response: requests.Response) -> KeapErrorBody:
    """Keap's v2 ``Error`` (``{code, message, status, details}``), tolerating a string ``code``, missing
    fields, ``details: null`` and bodies that are not JSON at all."""
    code = message = keap_status = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        code = str(raw_code).strip() if raw_code not in (None, "") else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
        keap_status = body.get("status") if isinstance(body.get("status"), str) else None
    return KeapErrorBody(response.status_code, code, message, keap_status)


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- the client -------------------------------------------------------------------------------------

class KeapClient:
    def __init__(self, settings: KeapSettings, *, bucket: TokenBucket | RedisTokenBucket | None = None,
                 http: requests.Session | None = None):
        self.settings = settings
        self.bucket = bucket or bucket_for(settings)
        self.http = http or requests.Session()

    @property
    def configured(self) -> bool:
        return bool(self.settings.api_key)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * (2 ** attempt))
        return random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> Any:
        """Send one call (retrying 429, 5xx and failed connections); return the decoded JSON or None."""
        if not self.configured:
            raise KeapNotConfigured()
        s = self.settings
        url = f"{s.base_url}{path}"
        headers = {"X-Keap-API-Key": s.api_key, "Accept": "application/json"}
        attempts = s.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            remaining = _remaining()
            if remaining is not None and remaining <= 0.05:
                logger.warning("keap %s %s not sent: the time allowed for this page ran out", method, path)
                raise KeapUnavailable(TOO_SLOW)
            self.bucket.acquire(s.max_wait if remaining is None else min(s.max_wait, remaining))
            timeout = s.timeout if remaining is None else max(0.05, min(s.timeout, remaining))
            try:
                response = self.http.request(method, url, params=params, json=json, headers=headers,
                                             timeout=timeout)
            except requests.ReadTimeout:
                # The call already took the whole timeout; a page should not wait that long again.
                logger.warning("keap %s %s timed out after %ss", method, path, timeout)
                raise KeapUnavailable(TOO_SLOW) from None
            except requests.RequestException as exc:  # connection refused/reset, connect timeout, DNS
                logger.warning("keap %s %s failed: %s (attempt %s of %s)", method, path, type(exc).__name__,
                               attempt + 1, attempts)
                delay = self._backoff(attempt)
                if last or not _fits(delay):
                    raise KeapUnavailable() from None
                _sleep(delay)
                continue

            if response.status_code < 400:
                if response.status_code == 204 or not response.content:
                    return None
                try:
                    return response.json()
                except ValueError:
                    logger.warning("keap %s %s answered %s with a body that is not JSON", method, path,
                                   response.status_code)
                    raise KeapUnavailable("Keap answered with something we could not read.") from None

            error = parse_error(response)
            logger.warning("keap %s %s answered %s (code %s, %s); attempt %s of %s", method, path,
                           error.status, error.code, error.keap_status, attempt + 1, attempts)
            if error.rate_limited:
                delay = retry_after_seconds(response)
                delay = self._backoff(attempt) if delay is None else delay
                if last or delay > s.retry_after_max or not _fits(delay):
                    raise KeapRateLimited()
                _sleep(delay)
                continue
            if error.status >= 500:
                delay = self._backoff(attempt)
                if last or not _fits(delay):
                    raise KeapUnavailable()
                _sleep(delay)
                continue
            if error.status in (401, 403):
                raise KeapAuthError()
            if error.status == 404:
                raise KeapNotFound()
            raise KeapError(f"Keap refused the request ({error.status}"
                            f"{', ' + error.code if error.code else ''}).")
        raise KeapUnavailable()  # pragma: no cover - the loop always returns or raises

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _pages(self, path: str, list_key: str, params: dict[str, Any]) -> Iterator[dict]:
        token = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self.get(path, **params, page_token=token) or {}
            yield from body.get(list_key) or []
            token = body.get("next_page_token")
            if not token or token in seen:
                return
            seen.add(token)

    # --- contacts ---

    def find_contacts_by_email(self, email: str) -> list[dict]:
        """Every contact Keap returns for ``email==<email>`` (filtered again on our side by the caller)."""
        return list(self._pages("/rest/v2/contacts", "contacts",
                                {"filter": f"email=={email}", "fields": "email_addresses", "page_size": 100}))

    def get_contact(self, contact_id: str) -> dict:
        return self.get(f"/rest/v2/contacts/{contact_id}", fields="email_addresses") or {}

    def update_contact_emails(self, contact_id: str, email_addresses: list[dict]) -> dict:
        return self.request("PATCH", f"/rest/v2/contacts/{contact_id}",
                            params={"update_mask": "email_addresses"},
                            json={"email_addresses": email_addresses}) or {}

    # --- subscriptions and products ---

    def list_active_subscriptions(self, contact_id: str) -> list[dict]:
        return list(self._pages("/rest/v2/subscriptions", "subscriptions",
                                {"filter": f"contact_id=={contact_id};status==Active", "page_size": 100}))

    def get_product(self, product_id: str) -> dict:
        return self.get(f"/rest/v2/products/{product_id}") or {}

    def update_subscription_payment_method(self, subscription_id: str, payment_method_id: str) -> dict:
        return self.request("PATCH", f"/rest/v2/subscriptions/{subscription_id}",
                            params={"update_mask": "payment_method_id"},
                            json={"payment_method_id": payment_method_id}) or {}

    # --- payment methods ---

    def list_payment_methods(self, contact_id: str, *, merchant_account_id: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"page_size": 100}
        if merchant_account_id:
            params["filter"] = f"merchant_account_id=={merchant_account_id}"
            params["order_by"] = "created_time desc"
        return list(self._pages(f"/rest/v2/contacts/{contact_id}/paymentMethods", "records", params))

    def create_payment_method_config(self, contact_id: str) -> str:
        """A short-lived session key for Keap's hosted card component. A bearer credential: never stored or
        logged, only put into the page that renders the component."""
        body = self.request("POST", "/rest/v2/paymentMethodConfigs",
                            json={"contact_id": str(contact_id)}) or {}
        key = body.get("session_key")
        if not isinstance(key, str) or not key:
            raise KeapUnavailable("Keap did not give us a card form session; please try again.")
        return key


def get_client() -> KeapClient:
    """The app's client (one requests.Session per app), built from its config on first use."""
    state = current_app.extensions.setdefault("keap", {})
    client = state.get("client")
    if client is None:
        client = state["client"] = KeapClient(KeapSettings.from_config(current_app.config))
    return client

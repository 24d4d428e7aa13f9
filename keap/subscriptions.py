"""A member's active Keap subscriptions, as plain rows for the billing page and the API.

For a member whose ``external_source`` is ``infusionsoft`` or ``keap`` (any case) we find their Keap
contacts by email (any of EMAIL1..3, case-insensitively; several contacts are merged), remember the contact
ids on the member (so an email change here keeps the view), then read each contact's active subscriptions,
product names and cards. Results are cached per member for a few minutes (``COURSEGATE_KEAP_CACHE_SECONDS``,
default 300) and dropped after any change (:func:`forget`). The cache lives in Redis when one is configured
(the rate-limit store or the Celery broker), so a card changed through one process is seen by all of them;
otherwise (the embedded default, one process) in memory.

Keap being slow, down or throttling never raises out of :func:`rows_for_member`: the result then says
the external subscriptions could not be loaded right now, and the page shows everything of ours.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from keap.client import KeapClient, deadline, get_client, setting
from keap.errors import KeapError, KeapNotFound, KeapUnavailable, SubscriptionNotFound
from keap.models import KeapContactLink
from membership.models import Member

logger = logging.getLogger(__name__)

KEAP_SOURCES = frozenset({"infusionsoft", "keap"})
EMAIL_FIELDS = frozenset({"EMAIL1", "EMAIL2", "EMAIL3"})
UNAVAILABLE_MESSAGE = ("Your subscriptions with our payment partner (Keap) could not be loaded right now. "
                       "Everything else on this page is up to date; please look again in a few minutes.")
INTERVAL_UNITS = {"DAY": "day", "DAILY": "day", "WEEK": "week", "WEEKLY": "week", "MONTH": "month",
                  "MONTHLY": "month", "YEAR": "year", "YEARLY": "year"}


def uses_keap(member: Member) -> bool:
    return (member.external_source or "").strip().lower() in KEAP_SOURCES


# --- the rows ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Card:
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    payment_method_id: str
    merchant_account_id: str | None

    @property
    def label(self) -> str:
        return f"{self.brand or 'Card'} ending {self.last4 or '????'}"

    @property
    def expiry(self) -> str:
        if not self.exp_month or not self.exp_year:
            return ""
        return f"{self.exp_month:02d}/{self.exp_year}"


@dataclass(frozen=True)
class SubscriptionRow:
    source: str
    subscription_id: str
    contact_id: str
    product_name: str
    started_at: date | None
    renews_on: date | None
    amount: Decimal | None
    currency: str
    interval_unit: str | None  # day | week | month | year
    interval_count: int
    payment_method_id: str | None
    merchant_account_id: str | None
    card: Card | None

    @property
    def interval_label(self) -> str:
        if not self.interval_unit:
            return ""
        if self.interval_count == 1:
            return f"every {self.interval_unit}"
        return f"every {self.interval_count} {self.interval_unit}s"


@dataclass(frozen=True)
class ExternalSubscriptions:
    """What the billing page shows for one external source: rows, or a plain message."""

    source: str
    status: str  # ok | unavailable | not_applicable
    rows: tuple[SubscriptionRow, ...] = ()
    contact_ids: tuple[str, ...] = ()
    message: str | None = None

    @property
    def available(self) -> bool:
        return self.status != "unavailable"

    @classmethod
    def not_applicable(cls) -> ExternalSubscriptions:
        return cls(source="keap", status="not_applicable")

    @classmethod
    def unavailable(cls, contact_ids: Iterable[str] = ()) -> ExternalSubscriptions:
        return cls(source="keap", status="unavailable", contact_ids=tuple(contact_ids),
                   message=UNAVAILABLE_MESSAGE)


# --- the per-member cache ---------------------------------------------------------------------------

@dataclass
class _MemberCache:
    entries: dict[int, tuple[tuple, float, ExternalSubscriptions]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, member: Member) -> ExternalSubscriptions | None:
        with self.lock:
            entry = self.entries.get(member.id)
        if entry is None:
            return None
        ident, expires, result = entry
        if ident != _ident(member) or expires <= time.monotonic():
            return None
        return result

    def put(self, member: Member, result: ExternalSubscriptions, seconds: float) -> None:
        if seconds <= 0:
            return
        with self.lock:
            self.entries[member.id] = (_ident(member), time.monotonic() + seconds, result)

    def drop(self, member_id: int) -> None:
        with self.lock:
            self.entries.pop(member_id, None)


def _ident(member: Member) -> tuple:
    # A changed email or source misses the cache even if nobody called forget().
    return (member.email, (member.external_source or "").lower(), member.keap_contact_id)


class _RedisMemberCache:
    """The same cache shared by every process through Redis (JSON values, expiring keys).

    Redis being away never breaks a page: a read misses, a write is skipped (and logged).
    """

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    @staticmethod
    def key(member_id: int) -> str:
        return f"coursegate:keap:member:{member_id}"

    def get(self, member: Member) -> ExternalSubscriptions | None:
        try:
            raw = self.client.get(self.key(member.id))
        except Exception as exc:
            logger.warning("keap cache read failed (%s)", type(exc).__name__)
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        if tuple(entry["ident"]) != _ident(member):
            return None
        return _load_result(entry["result"])

    def put(self, member: Member, result: ExternalSubscriptions, seconds: float) -> None:
        if seconds <= 0:
            return
        value = json.dumps({"ident": list(_ident(member)), "result": asdict(result)}, default=str)
        try:
            self.client.set(self.key(member.id), value, px=int(seconds * 1000))
        except Exception as exc:
            logger.warning("keap cache write failed (%s)", type(exc).__name__)

    def drop(self, member_id: int) -> None:
        try:
            self.client.delete(self.key(member_id))
        except Exception as exc:  # the entry expires on its own within KEAP_CACHE_SECONDS
            logger.warning("keap cache drop failed for member %s (%s)", member_id, type(exc).__name__)


def _load_result(data: dict) -> ExternalSubscriptions:
    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    rows = tuple(SubscriptionRow(**{**row, "started_at": day(row["started_at"]), "renews_on": day(row["renews_on"]),
                                    "amount": Decimal(row["amount"]) if row["amount"] is not None else None,
                                    "card": Card(**row["card"]) if row["card"] else None})
                 for row in data["rows"])
    return ExternalSubscriptions(source=data["source"], status=data["status"], rows=rows,
                                 contact_ids=tuple(data["contact_ids"]), message=data["message"])


def shared_cache_url(config) -> str | None:
    """The Redis every process of this deployment shares (rate-limit store, else the broker), if any."""
    for url in (config.get("RATELIMIT_STORAGE_URI"), config.get("CELERY_BROKER_URL")):
        if url and str(url).startswith(("redis://", "rediss://", "unix://")):
            return str(url)
    return None


def _cache() -> _MemberCache | _RedisMemberCache:
    state = current_app.extensions.setdefault("keap", {})
    cache = state.get("cache")
    if cache is None:
        url = shared_cache_url(current_app.config)
        cache = state["cache"] = _RedisMemberCache(url) if url else _MemberCache()
    return cache


def cached(member: Member) -> ExternalSubscriptions | None:
    return _cache().get(member)


def forget(member_id: int) -> None:
    """Drop the member's cached Keap view (after a card update, an email change, a new contact link)."""
    _cache().drop(member_id)


# --- contacts ---------------------------------------------------------------------------------------

def remembered_contact_ids(session: Session, member: Member) -> list[str]:
    ids = list(session.scalars(select(KeapContactLink.contact_id)
                               .where(KeapContactLink.member_id == member.id).order_by(KeapContactLink.id)))
    if member.keap_contact_id and member.keap_contact_id not in ids:
        ids.insert(0, member.keap_contact_id)
    return ids


def remember_contact(session: Session, member: Member, contact_id: str, *, matched_by: str = "email") -> bool:
    """Remember that ``contact_id`` is this member's Keap contact. Returns True when it was new.

    The Keap campaign webhook calls this with ``matched_by="campaign"``."""
    contact_id = str(contact_id).strip()
    if not contact_id:
        return False
    if not member.keap_contact_id:
        member.keap_contact_id = contact_id
    exists = session.scalar(select(KeapContactLink.id).where(KeapContactLink.member_id == member.id,
                                                             KeapContactLink.contact_id == contact_id))
    if exists is not None:
        return False
    session.add(KeapContactLink(member_id=member.id, contact_id=contact_id, matched_by=matched_by))
    session.flush()
    forget(member.id)
    return True


def contact_has_email(contact: dict, email: str) -> bool:
    wanted = email.strip().lower()
    for address in contact.get("email_addresses") or []:
        if not isinstance(address, dict):
            continue
        slot = address.get("field")
        if slot and str(slot).upper() not in EMAIL_FIELDS:
            continue
        if str(address.get("email") or "").strip().lower() == wanted:
            return True
    return False


def contacts_for_email(client: KeapClient, email: str) -> list[str]:
    """Ids of every contact with ``email`` in one of its three email slots (Keap's filter, then ours)."""
    ids: list[str] = []
    for contact in client.find_contacts_by_email(email):
        contact_id = str(contact.get("id") or "").strip()
        if contact_id and contact_id not in ids and contact_has_email(contact, email):
            ids.append(contact_id)
    return ids


def match_contacts(session: Session, member: Member, client: KeapClient) -> list[str]:
    """The remembered contacts plus any contact found under the member's current email (remembered now).

    A contact that a Keap campaign posted for this member is Keap's own word on who they are: then the
    remembered contacts are used as they are, without searching by email."""
    ids = remembered_contact_ids(session, member)
    if session.scalar(select(KeapContactLink.id).where(KeapContactLink.member_id == member.id,
                                                       KeapContactLink.matched_by == "campaign").limit(1)):
        return ids
    for contact_id in contacts_for_email(client, member.email):
        if contact_id not in ids:
            remember_contact(session, member, contact_id)
            ids.append(contact_id)
    return ids


# --- reading subscriptions --------------------------------------------------------------------------

def text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip()


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def card_from_payment_method(method: dict) -> Card | None:
    method_id = text_or_none(method.get("payment_method_id"))
    if not method_id:
        return None
    info = method.get("card_info") or {}
    last4 = "".join(ch for ch in str(info.get("last_four") or "") if ch.isdigit())[-4:] or None
    return Card(brand=text_or_none(info.get("brand")), last4=last4,
                exp_month=_int(info.get("expiration_month")),
                exp_year=_int(info.get("expiration_year")), payment_method_id=method_id,
                merchant_account_id=text_or_none(method.get("merchant_account_id")))


def product_name(client: KeapClient, product_id: str | None, names: dict[str, str]) -> str:
    if not product_id:
        return "Subscription"
    if product_id not in names:
        try:
            product = client.get_product(product_id)
        except KeapNotFound:
            product = {}
        names[product_id] = text_or_none(product.get("name")) or f"Keap product {product_id}"
    return names[product_id]


def load_rows(client: KeapClient, contact_ids: Iterable[str], *, currency: str) -> list[SubscriptionRow]:
    rows: list[SubscriptionRow] = []
    seen: set[str] = set()
    names: dict[str, str] = {}
    for contact_id in contact_ids:
        subscriptions = [s for s in client.list_active_subscriptions(contact_id)
                         if s.get("active", True) is not False and text_or_none(s.get("id")) not in seen]
        if not subscriptions:
            continue
        try:
            methods = client.list_payment_methods(contact_id)
        except KeapNotFound:
            methods = []
        cards = {card.payment_method_id: card for card in map(card_from_payment_method, methods) if card}
        for sub in subscriptions:
            sub_id = text_or_none(sub.get("id"))
            if not sub_id:
                continue
            seen.add(sub_id)
            method_id = text_or_none(sub.get("payment_method_id"))
            rows.append(SubscriptionRow(
                source="keap",
                subscription_id=sub_id,
                contact_id=text_or_none(sub.get("contact_id")) or str(contact_id),
                product_name=product_name(client, text_or_none(sub.get("product_id")), names),
                started_at=_date(sub.get("start_date")),
                renews_on=_date(sub.get("next_bill_date")),
                amount=_amount(sub.get("billing_amount")),
                currency=currency,
                interval_unit=INTERVAL_UNITS.get(str(sub.get("billing_cycle") or "").upper()),
                interval_count=max(1, _int(sub.get("billing_frequency")) or 1),
                payment_method_id=method_id,
                merchant_account_id=text_or_none(sub.get("merchant_account_id")),
                card=cards.get(method_id) if method_id else None,
            ))
    rows.sort(key=lambda r: (r.renews_on or date.max, r.product_name, r.subscription_id))
    return rows


def rows_for_member(session: Session, member: Member, *, fresh: bool = False) -> ExternalSubscriptions:
    """The member's active Keap subscriptions; never raises for Keap's failures (see the module doc).

    May remember newly matched contact ids (flushes); the caller commits."""
    if not uses_keap(member):
        return ExternalSubscriptions.not_applicable()
    cache = _cache()
    if not fresh:
        cached = cache.get(member)
        if cached is not None:
            return cached
    config = current_app.config
    contact_ids: list[str] = []
    try:
        client = get_client()
        with deadline(float(setting(config, "PAGE_BUDGET_SECONDS", 10))):
            contact_ids = match_contacts(session, member, client)
            rows = load_rows(client, contact_ids, currency=str(setting(config, "CURRENCY", "USD")))
    except KeapError as exc:
        logger.warning("keap subscriptions for member %s could not be loaded (%s)", member.id, exc.code)
        result = ExternalSubscriptions.unavailable(contact_ids)
        cache.put(member, result, float(setting(config, "FAILURE_CACHE_SECONDS", 30)))
        return result
    result = ExternalSubscriptions(source="keap", status="ok", rows=tuple(rows),
                                   contact_ids=tuple(contact_ids))
    cache.put(member, result, float(setting(config, "CACHE_SECONDS", 300)))
    return result


def find_row(session: Session, member: Member, subscription_id: str) -> SubscriptionRow:
    """One of the member's active Keap subscriptions; SubscriptionNotFound if it is not theirs."""
    result = rows_for_member(session, member)
    if result.status == "unavailable":
        raise KeapUnavailable()
    for row in result.rows:
        if row.subscription_id == str(subscription_id):
            return row
    raise SubscriptionNotFound()

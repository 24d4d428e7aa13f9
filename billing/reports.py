"""Money at risk, month by month: failed payments (carts' rebill failures and our own invoices), how many were
recovered within the grace period and the revenue that kept, how many lapsed; and monthly recurring revenue
and churn for our own plans. Read-only queries; the admin page and ``GET /api/v1/reports/money-at-risk`` show
the same figures.

Definitions (the page and the API describe them the same way):
- A *failure* is one unpaid payment, counted in the month it first failed: an invoice of ours with a failed
  charge, or a cart subscription's first failed rebill (the cart's retries of it fold into the same failure).
- *Recovered*: paid within the grace period after that first failure (ours: ``BILLING_GRACE_DAYS``; a cart's:
  its integration's ``grace_days``). *Lapsed*: the grace period ended unpaid. *In grace*: neither yet.
- Amounts are ours only, in minor units of one currency: carts do not send the amount of a failed rebill.
- MRR: the monthly price of our subscriptions signed and not cancelled at the month's end (now, for this
  month); a yearly 120.00 counts 10.00. *Churned*: our subscriptions cancelled in the month; the churn rate
  divides them by the subscriptions active when the month began.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import timeutil
from billing import invoices
from billing.models import AttemptOutcome, Invoice, InvoiceStatus, Mandate, PaymentAttempt, Plan
# Carts' rebill failures are part of the figure: read from the stored deliveries, never written.
from fulfillment import parsers
from fulfillment import services as fulfillment
from fulfillment.models import EventStatus, Integration, WebhookEvent

MAX_MONTHS = 36
FAILED_OUTCOMES = (AttemptOutcome.FAILED_RETRYABLE, AttemptOutcome.FAILED_HARD)
MONTHLY_FACTOR = {"day": 365 / 12, "week": 52 / 12, "month": 1.0, "year": 1 / 12}

_CART_ACTIONS = {**parsers.TC_ACTIONS, **parsers.GENERIC_EVENTS}
CART_FAILED_TYPES = sorted({n for n, a in _CART_ACTIONS.items() if a == parsers.Action.PAYMENT_FAILED}
                           | {"invoice.payment_failed"})
CART_PAID_TYPES = sorted({n for n, a in _CART_ACTIONS.items() if a == parsers.Action.PAYMENT_SUCCEEDED}
                         | {"invoice.paid"})


@dataclass
class Tally:
    """Failures of one origin (carts, or ours) in one month, by what became of them."""

    failed: int = 0
    recovered: int = 0
    lapsed: int = 0
    in_grace: int = 0

    def add(self, state: str) -> None:
        self.failed += 1
        setattr(self, state, getattr(self, state) + 1)


@dataclass
class Month:
    month: date  # its first day
    carts: Tally = field(default_factory=Tally)
    ours: Tally = field(default_factory=Tally)
    at_risk_amount: int = 0  # our failed invoices' amounts
    kept_amount: int = 0  # ... of which recovered within the grace period
    lost_amount: int = 0  # ... of which lapsed
    mrr: int = 0
    active_subscriptions: int = 0  # at the month's end
    churned: int = 0
    churned_mrr: int = 0
    churn_rate: float | None = None  # percent of the subscriptions active when the month began

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")


@dataclass
class Report:
    currency: str
    grace_days: int
    months: list[Month]


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def default_currency(session: Session) -> str:
    """The currency most of our plans use (``usd`` before there is a plan)."""
    row = session.execute(select(Plan.currency, func.count()).group_by(Plan.currency)
                          .order_by(func.count().desc(), Plan.currency).limit(1)).first()
    return row[0] if row else "usd"


def _state(paid_at: datetime | None, failed_at: datetime, grace: timedelta, now: datetime) -> str:
    if paid_at is not None and paid_at <= failed_at + grace:
        return "recovered"
    return "lapsed" if now > failed_at + grace else "in_grace"


def _our_failures(session: Session, report: dict[date, Month], since: datetime, currency: str,
                  grace: timedelta, now: datetime) -> None:
    first_failure = (select(PaymentAttempt.invoice_id, func.min(PaymentAttempt.created_at).label("failed_at"))
                     .where(PaymentAttempt.outcome.in_(FAILED_OUTCOMES)).group_by(PaymentAttempt.invoice_id)
                     .subquery())
    rows = session.execute(select(Invoice, first_failure.c.failed_at)
                           .join(first_failure, first_failure.c.invoice_id == Invoice.id)
                           .where(first_failure.c.failed_at >= since, Invoice.currency == currency))
    for invoice, failed_at in rows:
        failed_at = _aware(failed_at)
        month = report.get(_month_start(failed_at.date()))
        if month is None:
            continue
        paid_at = _aware(invoice.paid_at) if invoice.status == InvoiceStatus.PAID and invoice.paid_at else None
        state = _state(paid_at, failed_at, grace, now)
        month.ours.add(state)
        month.at_risk_amount += invoice.amount
        if state == "recovered":
            month.kept_amount += invoice.amount
        elif state == "lapsed":
            month.lost_amount += invoice.amount


def _subscription_key(row: WebhookEvent) -> str | None:
    try:
        event = fulfillment.parse_stored(row)
    except Exception:  # noqa: BLE001 - a delivery we cannot read again is left out of the figure, not fatal
        return row.order_ref
    return event.subscription_ref or event.order_ref or row.order_ref


def _cart_failures(session: Session, report: dict[date, Month], since: datetime, now: datetime) -> None:
    graces = {i.id: timedelta(days=i.grace_days) for i in session.scalars(select(Integration))}
    rows = session.scalars(select(WebhookEvent).where(
        WebhookEvent.event_type.in_(CART_FAILED_TYPES + CART_PAID_TYPES),
        WebhookEvent.integration_id.in_(list(graces)),
        WebhookEvent.status == EventStatus.PROCESSED, WebhookEvent.test_mode.is_(False),
        # Payments up to a grace period before the window still decide failures inside it.
        WebhookEvent.received_at >= since - max(graces.values(), default=timedelta(0)))
        .order_by(WebhookEvent.received_at, WebhookEvent.id))
    history: dict[tuple[int, str], list[tuple[datetime, bool]]] = {}
    for row in rows:
        key = _subscription_key(row)
        if key:
            history.setdefault((row.integration_id, key), []).append(
                (_aware(row.received_at), row.event_type in CART_FAILED_TYPES))
    for (integration_id, _), events in history.items():
        grace = graces[integration_id]
        index = 0
        while index < len(events):
            failed_at, failed = events[index]
            index += 1
            if not failed:
                continue
            # The cart's retries of the same payment are one failure, until it is paid or its grace runs out.
            paid_at = None
            while index < len(events) and events[index][0] <= failed_at + grace:
                moment, is_failure = events[index]
                index += 1
                if not is_failure:
                    paid_at = moment
                    break
            month = report.get(_month_start(failed_at.date()))
            if month is not None and failed_at >= since:
                month.carts.add(_state(paid_at, failed_at, grace, now))


def monthly_amount(mandate: Mandate) -> int:
    """A subscription's price per month, in minor units (rounded)."""
    return round(mandate.amount * MONTHLY_FACTOR[mandate.interval_unit] / mandate.interval_count)


def _our_recurring(session: Session, report: dict[date, Month], currency: str, now: datetime) -> None:
    mandates = list(session.scalars(select(Mandate).where(Mandate.signed_at.is_not(None),
                                                          Mandate.currency == currency)))

    def live(at: datetime) -> list[Mandate]:
        return [m for m in mandates if _aware(m.signed_at) <= at and (m.cancelled_at is None
                                                                      or _aware(m.cancelled_at) > at)]

    for start, month in report.items():
        begin, end = _at(start), min(_at(_next_month(start)), now)
        at_end = live(end)
        month.mrr = sum(monthly_amount(m) for m in at_end)
        month.active_subscriptions = len(at_end)
        gone = [m for m in mandates if m.cancelled_at is not None and begin <= _aware(m.cancelled_at) < end
                and _aware(m.signed_at) < _aware(m.cancelled_at)]
        month.churned = len(gone)
        month.churned_mrr = sum(monthly_amount(m) for m in gone)
        at_start = len(live(begin))
        month.churn_rate = round(100 * month.churned / at_start, 1) if at_start else None


def money_at_risk(session: Session, months: int = 12, currency: str | None = None) -> Report:
    """The last ``months`` calendar months (UTC), this one included, oldest first."""
    now = timeutil.now()
    currency = (currency or default_currency(session)).lower()
    first = _month_start(now.date())
    for _ in range(months - 1):
        first = _month_start(first - timedelta(days=1))
    report: dict[date, Month] = {}
    day = first
    while day <= now.date():
        report[day] = Month(day)
        day = _next_month(day)
    grace_days = invoices.grace_days()
    since = _at(first)
    _our_failures(session, report, since, currency, timedelta(days=grace_days), now)
    _cart_failures(session, report, since, now)
    _our_recurring(session, report, currency, now)
    return Report(currency=currency, grace_days=grace_days, months=list(report.values()))


def currencies(session: Session) -> list[str]:
    """Every currency our plans use, most used first, for the page's currency switch."""
    counted = Counter(session.scalars(select(Plan.currency)))
    return [code for code, _ in counted.most_common()] or ["usd"]

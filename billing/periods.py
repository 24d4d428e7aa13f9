"""Calendar arithmetic for billing intervals (day/week/month/year x count), in UTC."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def add_interval(moment: datetime, unit: str, count: int = 1) -> datetime:
    """``moment`` plus ``count`` units. Months and years keep the day of month, clamped to the month's end."""
    if unit == "day":
        return moment + timedelta(days=count)
    if unit == "week":
        return moment + timedelta(weeks=count)
    months = count if unit == "month" else 12 * count if unit == "year" else None
    if months is None:
        raise ValueError(f"unknown interval unit {unit!r}")
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def describe(unit: str, count: int) -> str:
    """'month', '3 months', 'year'."""
    return unit if count == 1 else f"{count} {unit}s"


def format_money(amount: int, currency: str) -> str:
    symbols = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
    zero_decimal = {"jpy", "krw", "vnd", "clp", "isk", "huf"}
    code = currency.lower()
    value = f"{amount:,}" if code in zero_decimal else f"{amount / 100:,.2f}"
    symbol = symbols.get(code)
    return f"{symbol}{value}" if symbol else f"{value} {code.upper()}"

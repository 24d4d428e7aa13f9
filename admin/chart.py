"""A server-rendered SVG line chart: no JavaScript, no CDN, readable by screen readers via a data table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape


@dataclass
class Series:
    label: str
    values: list[int]
    colour: str
    dash: str = ""  # a dash pattern too, so the lines differ without relying on colour


def nice_max(value: int) -> int:
    """A round top for the y axis (1, 2, 5 x 10^n) at or above ``value``."""
    if value <= 4:
        return 4
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def line_chart(days: list[date], series: list[Series], *, title: str, width: int = 720, height: int = 240) -> Markup:
    left, right, top, bottom = 40, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_max(max((v for s in series for v in s.values), default=0))
    count = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / count

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / top_value

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(_summary(days, series))}</desc>',
    ]
    for tick in range(5):  # horizontal grid lines with labels
        value = top_value * tick // 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#dcdcde" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#50575e">{value}</text>')
    for i, day in enumerate(days):  # a date label every two weeks, and the last day
        if i % 14 == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="11" '
                         f'fill="#50575e">{day.strftime("%d %b")}</text>')
    for s in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="2"{dash} points="{points}">'
                     f'<title>{escape(s.label)}</title></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _summary(days: list[date], series: list[Series]) -> str:
    if not days:
        return "No data."
    totals = "; ".join(f"{s.label}: {sum(s.values)} in total" for s in series)
    return f"From {days[0].isoformat()} to {days[-1].isoformat()}. {totals}."

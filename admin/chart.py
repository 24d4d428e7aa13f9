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


def axis(value: int, ticks: int = 4) -> tuple[int, int]:
    """A round step (1, 2 or 5 x 10^n) and the top of the y axis, so about ``ticks`` lines cover ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * ticks >= value:
                size = step * factor
                return size, max(size * -(-value // size), size)
        step *= 10


def line_chart(days: list[date], series: list[Series], *, title: str, width: int = 720, height: int = 240,
               label_every: int = 14, label_format: str = "%d %b", ident: str = "chart") -> Markup:
    """One line per series over ``days`` (or months: any dates), with a date label every ``label_every`` points
    counted back from the last. ``ident`` prefixes the title's and description's ids: one per chart on a page."""
    left, right, top, bottom = 40, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    step, top_value = axis(max((v for s in series for v in s.values), default=0))
    count = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / count

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / top_value

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(_summary(days, series))}</desc>',
    ]
    for value in range(0, top_value + 1, step):  # horizontal grid lines with labels
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#dcdcde" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#50575e">{value}</text>')
    last = len(days) - 1
    for i, day in enumerate(days):  # a date label every two weeks (by default), counted back from today
        if (last - i) % label_every == 0:
            anchor = "end" if i == last else "middle"
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="11" '
                         f'fill="#50575e">{day.strftime(label_format)}</text>')
    for index, s in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="{stroke_width(index, len(series))}"'
                     f'{dash} stroke-linejoin="round" points="{points}"><title>{escape(s.label)}</title></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stroke_width(index: int, count: int) -> int:
    """Each line is drawn over the ones before it, and narrower, so where two lines share their values
    (both 0 on a quiet day) the earlier, wider line still shows on both sides of the later one."""
    return 2 + 2 * (count - 1 - index)


def _summary(days: list[date], series: list[Series]) -> str:
    if not days:
        return "No data."
    totals = "; ".join(f"{s.label}: {sum(s.values)} in total" for s in series)
    return f"From {days[0].isoformat()} to {days[-1].isoformat()}. {totals}."

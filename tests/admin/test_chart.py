from datetime import date, timedelta

import re

import pytest

from admin.chart import Series, axis, line_chart


@pytest.mark.parametrize(("value", "expected"), [
    (0, (1, 1)), (3, (1, 3)), (7, (2, 8)), (10, (5, 10)), (23, (10, 30)), (101, (50, 150)), (4321, (2000, 6000)),
])
def test_axis_steps_are_round_and_cover_the_largest_value(value, expected):
    assert axis(value) == expected


def test_line_chart_is_accessible_svg_with_one_line_per_series():
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(90)]
    svg = str(line_chart(days, [Series("New <members>", [1] * 90, "#2271b1"),
                                Series("Revocations", [0] * 89 + [3], "#b32d2e", dash="6 4")],
                         title="Joins & leaves"))
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert "<title id=\"chart-title\">Joins &amp; leaves</title>" in svg
    assert "New &lt;members&gt;: 90 in total; Revocations: 3 in total." in svg
    assert svg.count("<polyline") == 2 and 'stroke-dasharray="6 4"' in svg
    assert "31 Mar" in svg and "17 Mar" in svg and "06 Jan" in svg and "05 Jan" not in svg  # every two weeks back from the last day


def test_lines_with_the_same_values_do_not_hide_each_other():
    """On quiet days both series are 0: the later line is drawn on top, so the earlier one must be wider."""
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(10)]
    svg = str(line_chart(days, [Series("A", [0] * 10, "#2271b1"), Series("B", [0] * 10, "#b32d2e", dash="6 4")],
                         title="t"))
    first, second = re.findall(r'<polyline[^>]*stroke-width="(\d+)"[^>]*points="([^"]+)"', svg)
    assert first[1] == second[1]  # the very same points
    assert int(first[0]) >= int(second[0]) + 2  # a 2px line on a 4px one leaves 1px showing on each side


def test_monthly_labels():
    months = [date(2026, m, 1) for m in range(1, 13)]
    svg = str(line_chart(months, [Series("MRR", list(range(12)), "#2271b1")], title="t", label_every=1,
                         label_format="%b %Y"))
    assert "Jan 2026" in svg and "Dec 2026" in svg

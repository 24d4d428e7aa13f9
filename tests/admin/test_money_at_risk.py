"""The admin's "Money at risk" page: the report's figures (worked out in tests/billing/test_reports.py) and its
charts."""

from __future__ import annotations

import re

import timeutil
from tests.billing.test_reports import NOW, books  # noqa: F401  (the constructed Oct-Dec 2026 books)


def test_the_page_shows_the_same_figures_as_the_api(admin, books):  # noqa: F811
    with timeutil.frozen(NOW):
        page = admin.get("/admin/money-at-risk?months=3")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page">Money at risk</a>' in html
    # This month (Dec): one cart failure and one of ours, both in grace; MRR 98.00 USD.
    assert re.search(r'<span class="figure">2</span> failed payments this month', html)
    assert re.search(r'<span class="figure">98.00 USD</span> MRR', html)
    row = re.search(r'<th scope="row">2026-11</th>(.*?)</tr>', html, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert cells == ["4 (2 / 2)", "0", "4", "0", "98.00 USD", "0.00 USD", "98.00 USD", "98.00 USD",
                     "1 (−100.00 USD)", "50.0%"]
    october = re.search(r'<th scope="row">2026-10</th>(.*?)</tr>', html, re.S).group(1)
    assert "49.00 USD" in october and "149.00 USD" in october  # kept 49.00; MRR 49 + 100
    assert html.count('<svg class="chart"') == 2
    assert 'id="failures-chart-title"' in html and 'id="mrr-chart-title"' in html  # one id per chart
    assert "Oct 2026" in html and "Dec 2026" in html
    assert html.count("<polyline") == 4  # failed, recovered, lapsed; MRR


def test_an_empty_install_has_a_quiet_report(admin):
    page = admin.get("/admin/money-at-risk").text
    assert "Last 12 months" in page and page.count('<th scope="row">') == 12
    assert re.search(r'<span class="figure">0</span> failed payments this month', page)
    assert re.search(r'<span class="figure">—</span> churn this month', page)

"""/metrics from gunicorn with several workers: PROMETHEUS_MULTIPROC_DIR adds up what every worker counted."""

from __future__ import annotations

import re

import pytest
import requests

from tests.fulfillment.helpers import encode, order
from tests.production.processes import service_env, start_gunicorn, stop

pytestmark = pytest.mark.postgres


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name and ",".join(sorted((match.group(2) or "").split(","))).strip(",") \
                == wanted:
            return float(match.group(3))
    return 0.0


def test_metrics_add_up_webhook_deliveries_across_gunicorn_workers(app, tc_shop, database_url, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = service_env(DATABASE_URL=database_url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                      COURSEGATE_MAIL_DIR=str(tmp_path / "mail"))
    base, proc = start_gunicorn(env, workers=2, log=tmp_path / "gunicorn.log")
    try:
        url = f"{base}/webhooks/thrivecart/{tc_shop.id}"
        answers = []
        with requests.Session() as one, requests.Session() as other:  # two connections: both workers answer
            for n in range(12):
                body, content_type = encode(order(order_id=f"M{n}", email=f"m{n}@example.com", items=["product-12"]),
                                            "form")
                for client in (one, other) if n < 4 else (one if n % 2 else other,):  # 4 redeliveries
                    answers.append(client.post(url, data=body, headers={"Content-Type": content_type},
                                               timeout=15).json()["status"])
        assert sorted(answers) == ["duplicate"] * 4 + ["processed"] * 12
        pids = {p.name for p in metrics_dir.iterdir()}
        assert len({re.sub(r"\D", "", name) for name in pids}) >= 2, f"only one worker recorded: {pids}"

        scrapes = [requests.get(f"{base}/metrics", timeout=10) for _ in range(4)]  # whichever worker answers
        # Not public: what a reverse proxy on this machine forwards is refused without the metrics token.
        forwarded = requests.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=10)
    finally:
        stop(proc)
    assert forwarded.status_code == 403 and forwarded.json()["code"] == "forbidden"
    for scrape in scrapes:
        assert scrape.status_code == 200 and scrape.headers["Cache-Control"] == "no-store"
        text = scrape.text
        assert sample(text, "coursegate_webhook_deliveries_total", integration="thrivecart",
                      status="processed") == 12
        assert sample(text, "coursegate_webhook_deliveries_total", integration="thrivecart",
                      status="duplicate") == 4
        assert sample(text, "coursegate_fulfilment_seconds_count") == 16
        # Read from the database at scrape time (the last welcome may still be on its way out).
        assert sum(sample(text, "coursegate_emails", status=s) for s in ("pending", "sent")) == 12

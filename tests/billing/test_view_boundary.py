"""Member billing pages end their transaction at the view boundary (``transactions.commit_view``): the redirect
after the work commits it; a refusal flashed on the way back leaves nothing behind."""

from __future__ import annotations

from billing import mandates
from billing.errors import MandateNotCancellable
from billing.models import Mandate, MandateStatus
from extensions import db


def _stored(mandate_id: int) -> Mandate:
    db.session.expire_all()
    return db.session.get(Mandate, mandate_id)


def test_a_refused_cancel_keeps_nothing_the_service_flushed(client, mandate, monkeypatch):
    def cancel_then_refuse(session, mandate, *, reason):
        mandate.cancel_reason = reason
        session.flush()
        raise MandateNotCancellable()

    monkeypatch.setattr(mandates, "cancel_mandate", cancel_then_refuse)
    response = client.post(f"/subscriptions/{mandate.id}/cancel")
    assert response.status_code == 302
    assert MandateNotCancellable.message in client.get(response.location).get_data(as_text=True)
    stored = _stored(mandate.id)
    assert (stored.status, stored.cancel_reason) == (MandateStatus.ACTIVE, None)


def test_a_cancel_is_committed_by_the_time_the_redirect_arrives(client, mandate):
    response = client.post(f"/subscriptions/{mandate.id}/cancel")
    assert response.status_code == 302
    stored = _stored(mandate.id)
    assert (stored.status, stored.cancel_reason) == (MandateStatus.CANCELLED, "customer_cancelled")


def test_a_pause_from_the_billing_page_is_committed_by_the_time_the_redirect_arrives(client, mandate):
    mandate.plan.max_pause_days = 30
    db.session.commit()
    response = client.post(f"/account/billing/subscriptions/{mandate.id}/pause", data={"days": "14"})
    assert response.status_code == 303
    assert _stored(mandate.id).pause_until is not None
    response = client.post(f"/account/billing/subscriptions/{mandate.id}/resume")
    assert response.status_code == 303
    assert _stored(mandate.id).pause_until is None

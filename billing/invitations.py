"""Update by invitation: the owner sends a member a signed, single-use, expiring link to add or replace
a card.

The link carries ``{"i": invitation id, "j": random id}`` signed with ``membership.tokens``; the
database keeps only a SHA-256 of the random id, set when the message leaves (:func:`send`), so no link is
ever stored or logged. Opening it needs no login; the page shows only the masked card in question.
Services flush; the caller commits.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import requests
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from billing import card_updates
from billing.errors import (InvitationClosed, InvitationNotFound, NoEmail, NoPhone, PaymentMethodRequired,
                            SmsNotConfigured)
from billing.gateways.base import CardDetails
from billing.models import CardInvitation, InvitationState, PaymentMethod
from emails import rendering, transport
from emails import services as email_services
from emails.errors import CannotResend
from emails.models import EmailStatus, OutboundEmail
from keap.models import CardChangedBy
from keap.subscriptions import uses_keap
from membership import tokens
from membership.models import Member

logger = logging.getLogger(__name__)

SALT = "coursegate.billing.card-invitation"
MAX_HOURS = 168
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REDACTED = "[link removed: it is only ever in the message itself]"
TWILIO_URL = "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"


def sms_configured() -> bool:
    config = current_app.config
    return all(config.get(name) for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"))


def token_hash(token_id: str) -> str:
    return hashlib.sha256(token_id.encode()).hexdigest()


def get(session: Session, invitation_id: int, member_id: int | None = None) -> CardInvitation:
    invitation = session.get(CardInvitation, invitation_id)
    if invitation is None or (member_id is not None and invitation.member_id != member_id):
        raise InvitationNotFound()
    return invitation


def list_for(session: Session, member: Member) -> list[CardInvitation]:
    return list(session.scalars(select(CardInvitation).where(CardInvitation.member_id == member.id)
                                .order_by(CardInvitation.id.desc())))


def create(session: Session, member: Member, *, expires_in_hours: int, channels: list[str],
           payment_method_id: int | None = None, created_by_ref: str | None = None) -> CardInvitation:
    """Record an invitation (state ``sent``); :func:`send` mails the link after commit."""
    if not EMAIL_RE.match(member.email or ""):
        raise NoEmail()
    channels = sorted(set(channels) | {"email"})
    if "sms" in channels:
        if not sms_configured():
            raise SmsNotConfigured()
        if not member.phone:
            raise NoPhone()
    methods = card_updates.methods_on_file(session, member)
    if payment_method_id is not None:
        method: PaymentMethod | None = card_updates.method_of(session, member, payment_method_id)
    elif len(methods) > 1:
        raise PaymentMethodRequired(errors={"payment_method_id": [
            f"Choose one of: {', '.join(str(m.id) for m in methods)}."]})
    else:
        method = methods[0] if methods else None
    hours = max(1, min(MAX_HOURS, expires_in_hours))
    now = timeutil.now()
    invitation = CardInvitation(member_id=member.id, payment_method_id=method.id if method else None,
                                channels=channels, status=InvitationState.SENT, created_at=now,
                                expires_at=now + timedelta(hours=hours), created_by_ref=created_by_ref)
    session.add(invitation)
    session.flush()
    return invitation


def revoke(session: Session, invitation: CardInvitation) -> CardInvitation:
    if invitation.state() not in (InvitationState.SENT, InvitationState.OPENED):
        raise InvitationClosed()
    invitation.status = InvitationState.REVOKED
    invitation.revoked_at = timeutil.now()
    invitation.setup_ref = None
    session.flush()
    return invitation


# --- sending (a job after commit: the link is made here and only ever travels in the message) ----------

def _link(invitation: CardInvitation) -> str:
    token_id = secrets.token_urlsafe(16)
    invitation.token_hash = token_hash(token_id)
    token = tokens.sign(SALT, {"i": invitation.id, "j": token_id})
    return f"{current_app.config['SITE_URL']}/card-update/{token}"


def sms_body(site_name: str, url: str, hours: int) -> str:
    return f"{site_name}: please update the card for your subscription here (link valid {hours} h): {url}"


def send(session: Session, invitation: CardInvitation) -> None:
    """Make the link and send it by email (and SMS when asked). Runs once: a sent link is never made again."""
    if invitation.token_hash is not None or invitation.state() != InvitationState.SENT:
        return
    member = invitation.member
    url = _link(invitation)
    now = timeutil.now()
    invitation.sent_at = now
    hours = max(1, round((invitation.expires_at - now).total_seconds() / 3600))
    method = invitation.payment_method
    context = {"member_name": member.name or member.email, "update_url": url, "expires_in_hours": hours,
               "card": f"{method.brand.title()} ending {method.last4}" if method else ""}
    subject, text, html = rendering.render("invitation", context, email_services.get_override(session, "invitation"))
    # The outbox row is the record, without the link (a bearer credential).
    record = OutboundEmail(recipient=member.email, template="invitation", subject=subject,
                           text_body=text.replace(url, REDACTED), html_body=html.replace(url, REDACTED),
                           dedupe_key=f"card_invitation:{invitation.id}", member_id=member.id, attempts=1,
                           status=EmailStatus.PENDING, created_at=now)
    session.add(record)
    session.flush()
    try:
        transport.send(recipient=member.email, subject=subject, text=text, html=html, email_id=record.id)
    except Exception as exc:
        record.status, record.last_error = EmailStatus.FAILED, type(exc).__name__
        invitation.email_status = "failed"
        logger.warning("card invitation %s: email failed (%s)", invitation.id, type(exc).__name__)
    else:
        record.status, record.sent_at = EmailStatus.SENT, now
        invitation.email_status = "sent"
    if "sms" in (invitation.channels or []):
        _send_sms(invitation, member, sms_body(current_app.config["SITE_NAME"], url, hours))
    session.flush()


@email_services.fresh_context_on_resend("invitation")
def _no_copy_of_an_invitation(session: Session, email: OutboundEmail) -> tuple[str, dict]:
    # Its link was made for that one message and never stored; a new invitation makes a new one.
    raise CannotResend("An invitation's link is never stored, so its email cannot be sent again. Send a new "
                       f"invitation instead: POST /api/v1/members/{email.member_id}/invitations, or the "
                       "member's page in the admin.", code="invitation_not_resendable")


def _send_sms(invitation: CardInvitation, member: Member, body: str) -> None:
    config = current_app.config
    if not sms_configured() or not member.phone:
        invitation.sms_status = "failed"
        return
    try:
        response = requests.post(TWILIO_URL.format(sid=config["TWILIO_ACCOUNT_SID"]),
                                 auth=(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"]),
                                 data={"To": member.phone, "From": config["TWILIO_FROM"], "Body": body},
                                 timeout=10)
        response.raise_for_status()
        invitation.sms_ref = str(response.json().get("sid", ""))[:64] or None
        invitation.sms_status = "sent"
    except (requests.RequestException, ValueError) as exc:
        invitation.sms_status = "failed"
        logger.warning("card invitation %s: SMS failed (%s)", invitation.id, type(exc).__name__)


# --- following the link ---------------------------------------------------------------------------------

@dataclass
class Opened:
    invitation: CardInvitation | None
    problem: str | None  # None | invalid | expired | used | revoked


def open_link(session: Session, token: str, *, mark_opened: bool = True) -> Opened:
    check = tokens.check(SALT, token, MAX_HOURS * 3600)
    if check.status == "expired":
        return Opened(None, "expired")
    payload = check.payload if check.status == "ok" else None
    if not isinstance(payload, dict) or not isinstance(payload.get("i"), int) or not payload.get("j"):
        return Opened(None, "invalid")
    invitation = session.get(CardInvitation, payload["i"], with_for_update=True)
    if invitation is None or invitation.token_hash != token_hash(str(payload["j"])):
        return Opened(None, "invalid")
    state = invitation.state()
    if state == InvitationState.COMPLETED:
        return Opened(invitation, "used")
    if state in (InvitationState.EXPIRED, InvitationState.REVOKED):
        return Opened(invitation, state)
    if mark_opened and invitation.status == InvitationState.SENT:
        invitation.status = InvitationState.OPENED
        invitation.opened_at = timeutil.now()
        session.flush()
    return Opened(invitation, None)


def complete(session: Session, invitation: CardInvitation, gateway_name: str,
             card: CardDetails) -> card_updates.CardUpdate:
    """The person saved a card: it replaces the invitation's card on every mandate; the link is used up."""
    member = invitation.member
    old = invitation.payment_method
    if old is None:  # "add a first payment method"; a card added since counts as the one on file
        on_file = card_updates.methods_on_file(session, member)
        old = on_file[0] if len(on_file) == 1 else None
    result = card_updates.replace_card(session, member, old, gateway_name, card,
                                       changed_by=CardChangedBy.INVITATION,
                                       changed_by_ref=f"invitation:{invitation.id}")
    invitation.status = InvitationState.COMPLETED
    invitation.completed_at = timeutil.now()
    invitation.new_payment_method_id = result.method.id
    invitation.setup_ref = None
    session.flush()
    return result


def is_keap_member(member: Member) -> bool:
    return uses_keap(member)

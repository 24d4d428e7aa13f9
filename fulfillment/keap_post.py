"""Keap (Infusionsoft) "Send HTTP Post" applied: a campaign step or legacy action set enrols, revokes or tags a
contact (``fulfillment.parsers.keap`` reads the post).

There is no event id and Keap may post the same step twice, so deliveries are not deduplicated by key:
each is stored and processed, and processing is idempotent. An enrolment is one grant per (contact, level)
(``order_ref`` ``keap:<contact id or email>``, ``line_ref`` ``level:<slug>``) and a member who already holds
the level from this integration gains nothing, so a repeated post is ``processed`` with the note
"Nothing changed". A revoked or ended enrolment posted again is opened again.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import signals
import timeutil
from fulfillment import rules
from fulfillment.models import EventStatus, Integration, WebhookEvent
from fulfillment.parsers import OrderEvent
from fulfillment.parsers.keap import ENROLL, REVOKE, TAG, UNTAG, KeapPost
from keap import subscriptions as keap_subscriptions
from membership import grants
from membership import services as membership
from membership.models import Grant, GrantSourceKind, GrantStatus, Level, Member
from membership.tags import AppliedBy, normalise_tag_name, tag_member, untag_member

# --- applying it ------------------------------------------------------------------------------------

def apply(session: Session, row: WebhookEvent, integration: Integration,
          order: OrderEvent) -> tuple[str, str | None]:
    post: KeapPost = order.keap
    if post.action == ENROLL:
        return _enroll(session, row, integration, order, post)
    if post.action == REVOKE:
        return _revoke(session, integration, order, post)
    return _tags(session, row, integration, order, post)


def _levels(session: Session, slugs: list[str]) -> tuple[list[Level], list[str]]:
    found = {level.slug.lower(): level
             for level in session.scalars(select(Level).where(func.lower(Level.slug).in_(slugs)))}
    return [found[slug] for slug in slugs if slug in found], [slug for slug in slugs if slug not in found]


def _unknown_levels(unknown: list[str]) -> str:
    return (f"Unknown level(s): {', '.join(unknown)}. Create the level with that slug (or fix the level pair of the "
            "campaign's HTTP Post), then replay this event.")


def _remember(session: Session, member: Member, post: KeapPost) -> None:
    if not post.contact_id:
        return
    try:
        with session.begin_nested():
            keap_subscriptions.remember_contact(session, member, post.contact_id, matched_by="campaign")
    except IntegrityError:  # the same step posted twice at once: the other post remembered it
        session.refresh(member)


def _open(grant: Grant, moment) -> bool:
    """Does this grant still stand (a repeated enrolment leaves it alone)?"""
    if grant.status in (GrantStatus.REVOKED, GrantStatus.EXPIRED):
        return False
    return grant.ends_at is None or grant.ends_at > moment


def _enroll(session: Session, row: WebhookEvent, integration: Integration, order: OrderEvent,
            post: KeapPost) -> tuple[str, str | None]:
    levels, unknown = _levels(session, post.levels)
    if unknown:
        return EventStatus.NEEDS_ATTENTION, _unknown_levels(unknown) + " No account was changed."
    member, created = membership.find_or_create_member(session, order.email, name=order.name)
    _remember(session, member, post)
    source = rules.external_source(integration)
    if (member.external_source or "").strip().lower() != source.lower():
        member.external_source = source
        keap_subscriptions.forget(member.id)
    moment = timeutil.now()
    existing = list(session.scalars(select(Grant).where(
        Grant.member_id == member.id, Grant.integration_id == integration.id,
        Grant.level_id.in_([level.id for level in levels])).order_by(Grant.id)))
    granted: list[tuple[Level, int]] = []
    unchanged: list[str] = []
    for level in levels:
        ends_at = grants.ends_for(level, moment, days=post.days)
        mine = [g for g in existing if g.level_id == level.id]
        if any(_open(g, moment) for g in mine):
            unchanged.append(level.slug)
            continue
        line_ref = f"level:{level.slug}"[:100]
        same = next((g for g in mine if g.order_ref == order.order_ref and g.line_ref == line_ref), None)
        if same is not None:  # revoked or ended: this post enrols them again
            grants.reopen(session, [same], starts_at=moment, ends_at=ends_at)
            granted.append((level, same.id))
            continue
        opened = grants.open_lines(session, [grants.new_grant_values(
            member_id=member.id, level=level, starts_at=moment, ends_at=ends_at, source_kind=GrantSourceKind.ORDER,
            integration_id=integration.id, order_ref=order.order_ref, line_ref=line_ref,
            note=f"Keap HTTP Post (event {row.id})")])
        if opened:
            granted.append((level, opened[0].grant_id))
        else:  # a concurrent post of the same step got there first
            unchanged.append(level.slug)
    if granted:
        signals.order_lines_granted.send(session, events=[dict(
            member=member, event_key=f"keap:{integration.id}:{row.id}:{level.id}", level=level,
            integration_id=integration.id,
            context={"grant_ids": [grant_id], "level_ids": [level.id], "order_id": order.order_ref,
                     "line": f"level:{level.slug}", "keap_contact_id": post.contact_id})
            for level, grant_id in granted])
    if created:
        membership.queue_welcome_email(session, member, [level for level, _ in granted])
    if not granted:
        return EventStatus.PROCESSED, (f"Nothing changed: {member.email} already has {', '.join(unchanged)} "
                                       "from this integration.")
    if unchanged:
        return EventStatus.PROCESSED, f"Already had {', '.join(unchanged)}; the other level(s) were granted."
    return EventStatus.PROCESSED, None


def _existing_member(session: Session, order: OrderEvent) -> Member | None:
    return session.scalar(select(Member).where(Member.email == order.email))


def _revoke(session: Session, integration: Integration, order: OrderEvent,
            post: KeapPost) -> tuple[str, str | None]:
    levels, unknown = _levels(session, post.levels)
    if unknown:
        return EventStatus.NEEDS_ATTENTION, _unknown_levels(unknown) + " Nothing was revoked."
    member = _existing_member(session, order)
    if member is None:
        return EventStatus.PROCESSED, f"No member has the email {order.email}: nothing to revoke."
    _remember(session, member, post)
    held = list(session.scalars(select(Grant).where(
        Grant.member_id == member.id, Grant.integration_id == integration.id,
        Grant.level_id.in_([level.id for level in levels]), Grant.status != GrantStatus.REVOKED).order_by(Grant.id)))
    grants.revoke(session, held, grants.RevokeReason.KEAP_REVOKE)
    if not held:
        return EventStatus.PROCESSED, (f"Nothing changed: {member.email} holds none of {', '.join(post.levels)} "
                                       "from this integration.")
    return EventStatus.PROCESSED, None


def _tags(session: Session, row: WebhookEvent, integration: Integration, order: OrderEvent,
          post: KeapPost) -> tuple[str, str | None]:
    if post.action == TAG:
        # A tag may drive access through an automation, so an unknown email becomes a member (no welcome email:
        # an automation rule sends what the owner wants).
        member, _ = membership.find_or_create_member(session, order.email, name=order.name)
    else:
        member = _existing_member(session, order)
        if member is None:
            return EventStatus.PROCESSED, f"No member has the email {order.email}: nothing to untag."
    _remember(session, member, post)
    changed = []
    for name in post.tags:
        name = normalise_tag_name(name)
        key = f"keap:{integration.id}:{row.id}:{post.action}:{name}"
        if post.action == TAG:
            done = tag_member(session, member, name, applied_by=AppliedBy.EVENT, source=f"keap webhook:{row.id}",
                              event_key=key, integration_id=integration.id)
        else:
            done = untag_member(session, member, name, event_key=key, integration_id=integration.id)
        if done:
            changed.append(name)
    if not changed:
        verb = "already has" if post.action == TAG else "has none of"
        return EventStatus.PROCESSED, f"Nothing changed: {member.email} {verb} {', '.join(post.tags)}."
    return EventStatus.PROCESSED, None


# --- what the owner pastes into the campaign --------------------------------------------------------

def setup(session: Session, integration: Integration) -> dict:
    """The URL (with its key) and the name/value pairs for a Campaign Builder "Send HTTP Post" step."""
    url = rules.webhook_url(integration)
    if integration.secret:
        url += "?key=" + quote(integration.secret, safe="")
    slug = session.scalar(select(Level.slug).order_by(Level.id).limit(1)) or "your-level-slug"
    contact = [{"name": "Email", "value": "~Contact.Email~"}, {"name": "contactId", "value": "~Contact.Id~"},
               {"name": "FirstName", "value": "~Contact.FirstName~"},
               {"name": "LastName", "value": "~Contact.LastName~"}]

    def pairs(*extra: tuple[str, str]) -> list[dict]:
        return contact + [{"name": name, "value": value} for name, value in extra]

    return {
        "url": url,
        "pairs": pairs(("action", ENROLL), ("level", slug)),
        "examples": [
            {"action": ENROLL, "description": "Find or create the member and grant the level(s) (comma-separated "
                                              "slugs); add days = 30 for a time-limited enrolment.",
             "pairs": pairs(("action", ENROLL), ("level", slug))},
            {"action": REVOKE, "description": "Revoke the level(s) this integration granted; access from other "
                                              "sources stays.",
             "pairs": pairs(("action", REVOKE), ("level", slug))},
            {"action": TAG, "description": "Apply the tag(s) (comma-separated); tag_added automations run.",
             "pairs": pairs(("action", TAG), ("tag", "your-tag"))},
            {"action": UNTAG, "description": "Remove the tag(s); tag_removed automations run.",
             "pairs": pairs(("action", UNTAG), ("tag", "your-tag"))},
        ],
    }

"""Keap (Infusionsoft) "Send HTTP Post": a campaign step or legacy action set enrols, revokes or tags a contact.

Keap posts form fields: a legacy action set the whole contact record (``Email``, ``FirstName``, ``Id``, ...),
a Campaign Builder step only the name/value pairs the owner typed, with merge fields as values
(``Email`` = ``~Contact.Email~``). Field names are matched case-insensitively; a value that is still a merge
field (``~Contact.Email~``: Keap had nothing to put there) counts as missing. The owner's own pairs say what
happens: ``action`` (enroll, the default; revoke; tag; untag), ``level`` (level slugs, comma-separated),
``tag`` (tag names, comma-separated) and ``days`` (a time-limited enrolment).

There is no event id and Keap may post the same step twice, so deliveries are not deduplicated by key:
each is stored and processed, and processing is idempotent. An enrolment is one grant per (contact, level)
(``order_ref`` ``keap:<contact id or email>``, ``line_ref`` ``level:<slug>``) and a member who already holds
the level from this integration gains nothing, so a repeated post is ``processed`` with the note
"Nothing changed". A revoked or ended enrolment posted again is opened again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import timeutil
from automations.actions import revoke_now
from automations.models import Trigger
from automations.tags import tag_member, untag_member
from automations.triggers import fire
from fulfillment import cleaning, rules, services
from fulfillment.errors import UnparseableBody
from fulfillment.models import EventStatus, Integration, WebhookEvent
from fulfillment.parsers import Action, OrderEvent
from keap import subscriptions as keap_subscriptions
from membership import services as membership
from sqlutil import insert_ignoring_conflicts
from membership.errors import InvalidEmail
from membership.models import Grant, GrantSourceKind, GrantStatus, Level, Member
from membership.tags import AppliedBy, is_valid_tag_name, normalise_tag_name

ENROLL, REVOKE, TAG, UNTAG = "enroll", "revoke", "tag", "untag"
ACTIONS = {"enroll": ENROLL, "enrol": ENROLL, "revoke": REVOKE, "tag": TAG, "untag": UNTAG}
KEY_FIELD = "key"
EMAIL_FIELDS = ("email", "contact0email")
CONTACT_ID_FIELDS = ("contactid", "contact0id", "id")
FIRST_NAME_FIELDS = ("firstname", "contact0firstname")
LAST_NAME_FIELDS = ("lastname", "contact0lastname")
REVOKE_REASON = "keap_revoke"
GRANT_KEY = ("integration_id", "order_ref", "line_ref", "level_id")  # uq_grants_order_line_level
MAX_DAYS = 36500
MAX_FIELDS = 2000
# A merge field Keap could not fill arrives as itself: ``~Contact.Email~``.
_MERGE_FIELD = re.compile(r"~[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+~")


@dataclass
class KeapPost:
    """What the owner's pairs ask for."""

    action: str
    levels: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    days: int | None = None
    contact_id: str | None = None


# --- reading a post ---------------------------------------------------------------------------------

def _pairs(body: bytes, content_type: str) -> tuple[list[tuple[str, str]], bool]:
    """The posted name/value pairs in order, and whether the body was JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnparseableBody("The body is not UTF-8 text.") from None
    stripped = text.strip()
    if "json" in content_type.lower() or stripped.startswith("{"):
        try:
            tree = json.loads(stripped or "{}")
        except ValueError:
            raise UnparseableBody("The body is not valid JSON.") from None
        if not isinstance(tree, dict):
            raise UnparseableBody("The JSON body must be an object.")
        pairs = []
        for name, value in tree.items():
            for item in value if isinstance(value, list) else [value]:
                if item is not None and not isinstance(item, (dict, list)):
                    pairs.append((str(name), str(item) if not isinstance(item, bool) else str(item).lower()))
        return cleaning.pairs(pairs), True
    try:
        return cleaning.pairs(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)), False
    except ValueError:
        raise UnparseableBody(f"The form has more than {MAX_FIELDS} fields.") from None


def decode(body: bytes, content_type: str) -> dict[str, list[str]]:
    """Form or JSON -> lower-cased field name -> its values, in the order posted."""
    fields: dict[str, list[str]] = {}
    for name, value in _pairs(body, content_type)[0]:
        fields.setdefault(name.strip().lower(), []).append(value)
    return fields


def _tree(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    tree: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name not in tree:
            tree[name] = value
        else:
            earlier = tree[name]
            tree[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
    return tree


def payload(body: bytes, content_type: str) -> dict[str, str | list[str]]:
    """The pairs as posted (names as sent; a repeated name lists its values), for the owner's event view."""
    return _tree(_pairs(body, content_type)[0])


def strip_key(body: bytes, content_type: str) -> str:
    """The body to store: every pair as posted except the ``key`` (any case)."""
    pairs, was_json = _pairs(body, content_type)
    kept = [(name, value) for name, value in pairs if name.strip().lower() != KEY_FIELD]
    return json.dumps(_tree(kept)) if was_json else urlencode(kept)


def given_key(fields: dict[str, list[str]], query_key: str | None) -> str | None:
    """The secret: ``?key=`` in the URL, else a ``key`` pair."""
    if query_key:
        return query_key
    values = fields.get(KEY_FIELD) or []
    return values[0] if values else None


def usable(value: str | None) -> str | None:
    """The value, or None when it is empty or still a merge field."""
    value = (value or "").strip()
    if not value or _MERGE_FIELD.search(value):
        return None
    return value


def _first(fields: dict[str, list[str]], names: tuple[str, ...]) -> str | None:
    for name in names:
        for value in fields.get(name, ()):
            if usable(value):
                return usable(value)
    return None


def _list(fields: dict[str, list[str]], name: str) -> list[str]:
    """All values of a pair (posted once comma-separated, or several times), without blanks and merge fields."""
    items: list[str] = []
    for value in fields.get(name, ()):
        for part in value.split(","):
            part = usable(part)
            if part and part.lower() not in items:
                items.append(part.lower())
    return items


def event(fields: dict[str, list[str]]) -> OrderEvent:
    """The post as an :class:`OrderEvent` (``Action.KEAP_POST``); what cannot be used becomes its ``problem``."""
    raw_action = _first(fields, ("action",)) or ENROLL
    action = ACTIONS.get(raw_action.lower())
    raw_email = _first(fields, EMAIL_FIELDS)
    contact_id = _first(fields, CONTACT_ID_FIELDS)
    contact_id = contact_id[:50] if contact_id else None
    name = " ".join(part for part in (_first(fields, FIRST_NAME_FIELDS), _first(fields, LAST_NAME_FIELDS)) if part)
    post = KeapPost(action=action or raw_action.lower(), levels=_list(fields, "level"), tags=_list(fields, "tag"),
                    contact_id=contact_id)
    problem, email = None, None
    try:
        email = membership.normalise_email(raw_email) if raw_email else None
    except InvalidEmail:
        pass
    raw_days = _first(fields, ("days",))
    if action is None:
        problem = (f"Unknown action {raw_action!r}: the action pair must be enroll, revoke, tag or untag. Fix the "
                   "campaign's HTTP Post, then replay this event.")
    elif raw_email is None:
        problem = ("The post has no usable email: no Email pair, or it was empty or an unfilled merge field such as "
                   "~Contact.Email~. Add the pair Email = ~Contact.Email~ to the campaign's HTTP Post (and check "
                   "the contact has an email), then replay this event.")
    elif email is None:
        problem = (f"The email {raw_email!r} is not usable. Check the Email pair of the campaign's HTTP Post, "
                   "then replay this event.")
    elif action in (ENROLL, REVOKE) and not post.levels:
        problem = (f"No level to {action}: add the pair level = <level slug> (several comma-separated) to the "
                   "campaign's HTTP Post, then replay this event.")
    elif action in (TAG, UNTAG) and not post.tags:
        problem = (f"No tag to {'apply' if action == TAG else 'remove'}: add the pair tag = <tag name> (several "
                   "comma-separated) to the campaign's HTTP Post, then replay this event.")
    elif action in (TAG, UNTAG) and not all(is_valid_tag_name(tag) for tag in post.tags):
        bad = ", ".join(repr(tag) for tag in post.tags if not is_valid_tag_name(tag))
        problem = (f"Unusable tag name(s) {bad}: use lower-case letters, digits and - _ . : only. Fix the "
                   "campaign's HTTP Post, then replay this event.")
    elif action == ENROLL and raw_days is not None:
        # The length first: int() refuses more than 4300 digits.
        whole = raw_days.isascii() and raw_days.isdigit() and len(raw_days) <= 6
        if not whole or not 1 <= int(raw_days) <= MAX_DAYS:
            problem = (f"days must be a whole number of days from 1 to {MAX_DAYS}, not {raw_days[:40]!r}. Fix the "
                       "campaign's HTTP Post, then replay this event.")
        else:
            post.days = int(raw_days)
    who = contact_id or email or (raw_email or "").strip().lower() or None
    return OrderEvent(action=Action.KEAP_POST, event_type=f"keap.{post.action}"[:100], dedupe_key=None,
                      email=email or raw_email, name=name, order_ref=f"keap:{who}"[:100] if who else None,
                      customer_ref=contact_id, problem=problem, keap=post)


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
        ends_at = moment + timedelta(days=post.days or level.duration_days) if (
            post.days or level.duration_days) else None
        mine = [g for g in existing if g.level_id == level.id]
        if any(_open(g, moment) for g in mine):
            unchanged.append(level.slug)
            continue
        line_ref = f"level:{level.slug}"[:100]
        same = next((g for g in mine if g.order_ref == order.order_ref and g.line_ref == line_ref), None)
        if same is not None:  # revoked or ended: this post enrols them again
            same.status, same.starts_at, same.ends_at = GrantStatus.ACTIVE, moment, ends_at
            same.revoked_at = same.revoke_reason = same.revoke_at = same.scheduled_revoke_reason = None
            same.past_due_since = None
            session.flush()
            granted.append((level, same.id))
            continue
        values = dict(member_id=member.id, level_id=level.id, status=GrantStatus.ACTIVE, starts_at=moment,
                      ends_at=ends_at, source_kind=GrantSourceKind.ORDER, integration_id=integration.id,
                      order_ref=order.order_ref, line_ref=line_ref, subscription_ref=None,
                      note=f"Keap HTTP Post (event {row.id})", created_at=moment, updated_at=moment)
        inserted = insert_ignoring_conflicts(session, Grant, GRANT_KEY, [values])
        if inserted:
            granted.append((level, inserted[0].id))
        else:  # a concurrent post of the same step got there first
            unchanged.append(level.slug)
    for level, grant_id in granted:
        fire(session, Trigger.ORDER_COMPLETED, member=member, event_key=f"keap:{integration.id}:{row.id}:{level.id}",
             level=level, integration_id=integration.id,
             context={"grant_ids": [grant_id], "level_ids": [level.id], "order_id": order.order_ref,
                      "line": f"level:{level.slug}", "keap_contact_id": post.contact_id})
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
    grants = list(session.scalars(select(Grant).where(
        Grant.member_id == member.id, Grant.integration_id == integration.id,
        Grant.level_id.in_([level.id for level in levels]), Grant.status != GrantStatus.REVOKED).order_by(Grant.id)))
    for grant in grants:
        revoke_now(session, grant, REVOKE_REASON)
    if not grants:
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

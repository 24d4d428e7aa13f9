"""Keap (Infusionsoft) "Send HTTP Post": the posted name/value pairs read into an :class:`OrderEvent`.

Keap posts form fields: a legacy action set the whole contact record (``Email``, ``FirstName``, ``Id``, ...),
a Campaign Builder step only the name/value pairs the owner typed, with merge fields as values
(``Email`` = ``~Contact.Email~``). Field names are matched case-insensitively; a value that is still a merge
field (``~Contact.Email~``: Keap had nothing to put there) counts as missing. The owner's own pairs say what
happens: ``action`` (enroll, the default; revoke; tag; untag), ``level`` (level slugs, comma-separated),
``tag`` (tag names, comma-separated) and ``days`` (a time-limited enrolment). Applying it is
``fulfillment.keap_post``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from fulfillment import cleaning
from fulfillment.errors import UnparseableBody
from fulfillment.parsers.events import Action, OrderEvent
from membership import services as membership
from membership.errors import InvalidEmail
from membership.tags import is_valid_tag_name

ENROLL, REVOKE, TAG, UNTAG = "enroll", "revoke", "tag", "untag"
ACTIONS = {"enroll": ENROLL, "enrol": ENROLL, "revoke": REVOKE, "tag": TAG, "untag": UNTAG}
KEY_FIELD = "key"
EMAIL_FIELDS = ("email", "contact0email")
CONTACT_ID_FIELDS = ("contactid", "contact0id", "id")
FIRST_NAME_FIELDS = ("firstname", "contact0firstname")
LAST_NAME_FIELDS = ("lastname", "contact0lastname")
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

"""What a usable email address is, checked by the ``email-validator`` package (syntax only: no DNS).

Every email that reaches a member row goes through ``normalise_email``: the owner API (create, patch, bulk,
CSV import), the sign-in forms, and cart deliveries (fulfillment calls it before finding or creating the
buyer, and stores a delivery whose email it refuses as ``needs_attention``).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from membership.errors import InvalidEmail

MAX_LENGTH = 320


def normalise_email(raw: str | None) -> str:
    """``raw`` trimmed, checked and lower-cased (the domain in its Unicode form, as email-validator gives it),
    or ``InvalidEmail`` saying why not."""
    email = (raw or "").strip()
    if not email or len(email) > MAX_LENGTH:
        raise InvalidEmail(f"{raw!r} is not a usable email address.")
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(f"{raw!r} is not a usable email address. {error}") from None
    return checked.normalized.lower()


def is_usable_email(raw: str | None) -> bool:
    try:
        normalise_email(raw)
    except InvalidEmail:
        return False
    return True

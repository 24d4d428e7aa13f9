"""What a usable email address is, checked by the ``email-validator`` package (syntax only: no DNS).

Every email that reaches a member row goes through ``normalise_email``: the owner API (create, patch, bulk,
CSV import), the sign-in forms, and cart deliveries (fulfillment calls it before finding or creating the
buyer, and stores a delivery whose email it refuses as ``needs_attention``).
"""

from __future__ import annotations

import functools

from email_validator import EmailNotValidError, validate_email

from membership.errors import InvalidEmail

MAX_LENGTH = 320


def normalise_email(raw: str | None) -> str:
    """``raw`` trimmed, checked and lower-cased (the domain in its Unicode form, as email-validator gives it),
    or ``InvalidEmail`` saying why not."""
    email = (raw or "").strip()
    if not email or len(email) > MAX_LENGTH:
        raise InvalidEmail(f"{raw!r} is not a usable email address.")
    normalised, problem = _checked(email)
    if problem is not None:
        raise InvalidEmail(f"{raw!r} is not a usable email address. {problem}")
    return normalised


# The same few addresses come back again and again (a front end's access check per page view, a returning
# buyer), and checking one is a tenth of an access check's CPU: the answers are kept, good and bad alike.
@functools.lru_cache(maxsize=4096)
def _checked(email: str) -> tuple[str, str | None]:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower(), None
    except EmailNotValidError as error:
        return "", str(error)


def is_usable_email(raw: str | None) -> bool:
    try:
        normalise_email(raw)
    except InvalidEmail:
        return False
    return True

"""The one place a message leaves the service: SMTP when ``MAIL_SERVER`` is set, else ``.eml`` files."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app
from flask_mailman import EmailMultiAlternatives, Mail

import config

mail = Mail()


def build_message(*, sender: str, recipient: str, subject: str, text: str, html: str, email_id: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=f"coursegate-{email_id}")
    # 8bit keeps every line whole in the .eml file, so a newcomer reading it in a terminal can copy the
    # login link as it is (quoted-printable would fold it with "=" at 76 characters).
    msg.set_content(text, cte="8bit")
    msg.add_alternative(html, subtype="html", cte="8bit")
    return msg


def mail_dir() -> Path:
    # The environment's COURSEGATE_MAIL_DIR arrives as MAIL_DIR (from_prefixed_env drops the prefix).
    configured = current_app.config.get("COURSEGATE_MAIL_DIR") or current_app.config.get("MAIL_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "mail"


def sender_address() -> str:
    """MAIL_DEFAULT_SENDER, else the site's name at the site's domain."""
    cfg = current_app.config
    return cfg.get("MAIL_DEFAULT_SENDER") or config.default_sender(cfg["SITE_NAME"], cfg["SITE_URL"])


def send(*, recipient: str, subject: str, text: str, html: str, email_id: int) -> None:
    """Deliver one message or raise. Callers record the outcome on the row."""
    sender = sender_address()
    if current_app.config.get("MAIL_SERVER"):
        message = EmailMultiAlternatives(subject=subject, body=text, from_email=sender, to=[recipient],
                                         headers={"X-Coursegate-Email-Id": str(email_id)})
        message.attach_alternative(html, "text/html")
        message.send(fail_silently=False)
        return
    folder = mail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    message = build_message(sender=sender, recipient=recipient, subject=subject, text=text, html=html,
                            email_id=email_id)
    # Several databases (a test run, a fresh install) may share one folder and reuse email ids: the time and a
    # random part make every name new, and the exclusive create ("x") never replaces a file that is there.
    slug = re.sub(r"[^a-z0-9]+", "-", recipient.lower()).strip("-")[:60]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    with open(folder / f"{stamp}-{email_id:06d}-{uuid.uuid4().hex[:8]}-{slug}.eml", "xb") as fh:
        fh.write(bytes(message))

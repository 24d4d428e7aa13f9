"""The one place a message leaves the service: SMTP when ``MAIL_SERVER`` is set, else ``.eml`` files."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app
from flask_mailman import EmailMultiAlternatives, Mail

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


def send(*, recipient: str, subject: str, text: str, html: str, email_id: int) -> None:
    """Deliver one message or raise. Callers record the outcome on the row."""
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    if current_app.config.get("MAIL_SERVER"):
        message = EmailMultiAlternatives(subject=subject, body=text, from_email=sender, to=[recipient],
                                         headers={"X-Coursegate-Email-Id": str(email_id)})
        message.attach_alternative(html, "text/html")
        message.send(fail_silently=False)
        return
    folder = mail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", recipient.lower()).strip("-")[:60]
    path = folder / f"{email_id:06d}-{slug}.eml"
    message = build_message(sender=sender, recipient=recipient, subject=subject, text=text, html=html,
                            email_id=email_id)
    path.write_bytes(bytes(message))

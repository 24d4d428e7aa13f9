"""Small factories: add + flush, unique defaults. Call inside an app context."""

from __future__ import annotations

import itertools

from extensions import db
from fulfillment.models import FulfillmentRule, Integration
from membership.models import Course, Level, Member
from membership import grants

_seq = itertools.count(1)


def make_course(*, title: str | None = None, slug: str | None = None, status: str = "published") -> Course:
    n = next(_seq)
    course = Course(title=title or f"Course {n}", slug=slug or f"course-{n}", status=status)
    db.session.add(course)
    db.session.flush()
    return course


def make_level(*, name: str | None = None, slug: str | None = None, courses: list[Course] | None = None,
               duration_days: int | None = None) -> Level:
    n = next(_seq)
    level = Level(name=name or f"Level {n}", slug=slug or f"level-{n}", duration_days=duration_days,
                  courses=courses if courses is not None else [make_course()])
    db.session.add(level)
    db.session.flush()
    return level


def make_member(*, email: str | None = None, name: str = "Test Member", **fields) -> Member:
    member = Member(email=(email or f"member{next(_seq)}@example.com").strip().lower(), name=name, **fields)
    db.session.add(member)
    db.session.flush()
    return member


def make_integration(*, kind: str = "thrivecart", secret: str | None = "TESTSECRET", **fields) -> Integration:
    integration = Integration(kind=kind, name=fields.pop("name", f"{kind} {next(_seq)}"), secret=secret, **fields)
    db.session.add(integration)
    db.session.flush()
    return integration


def make_rule(integration: Integration, product_id: str, levels: list[Level], *, item_type: str = "product",
              pricing_option_id: str | None = None) -> FulfillmentRule:
    rule = FulfillmentRule(integration=integration, product_id=product_id, item_type=item_type,
                           pricing_option_id=pricing_option_id, levels=levels)
    db.session.add(rule)
    db.session.flush()
    return rule


def grant(member: Member, level: Level, **kwargs):
    return grants.open_grant(db.session, member, level, **kwargs)


def timeutil_now():
    import timeutil

    return timeutil.now()

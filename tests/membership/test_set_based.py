"""The set-based forms the group-commit receiver stands on: members found or created, tags, automation events
and emails for many at once, one statement per step, and safe when two transactions do the same at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import signals
from automations import triggers
from automations.models import AutomationEvent
from emails import services as email_services
from emails.models import OutboundEmail
from membership import services, tags
from membership.models import Member
from membership.tags import MemberTag, Tag
from tests import factories
from tests.helpers import statements_sent
from tests.membership.test_grants import _in_threads, heard


def test_members_are_found_or_created_for_many_emails_in_two_statements(session):
    unnamed = factories.make_member(email="known@example.com", name="")
    session.commit()
    with statements_sent(session) as statements:
        found = services.find_or_create_members(session, {"known@example.com": "Known Buyer",
                                                          "new1@example.com": " New One ", "new2@example.com": ""})
    assert len(statements) == 2  # one to look them all up, one to create the missing
    assert found["known@example.com"] == (unnamed, False) and unnamed.name == "Known Buyer"
    assert found["new1@example.com"][1] and found["new1@example.com"][0].name == "New One"
    assert found["new2@example.com"][1]
    session.commit()
    assert sorted(m.email for m in session.scalars(select(Member))) == [
        "known@example.com", "new1@example.com", "new2@example.com"]
    again = services.find_or_create_members(session, {"new1@example.com": "", "NEW2@example.com".lower(): ""})
    assert [created for _, created in again.values()] == [False, False]


@pytest.mark.postgres
def test_two_transactions_creating_the_same_members_make_each_once(app, session):
    people = {f"racer{n}@example.com": "Racer" for n in range(20)}
    results = _in_threads(app, lambda s: {e: (m.id, c) for e, (m, c) in
                                          services.create_or_find_members(s, people).items()})
    for email in people:
        (first_id, first_created), (second_id, second_created) = results[0][email], results[1][email]
        assert first_id == second_id and [first_created, second_created].count(True) == 1
    session.expire_all()
    assert len(session.scalars(select(Member)).all()) == 20


def test_many_members_are_tagged_in_one_statement_and_only_what_is_new_is_announced(session):
    members = [factories.make_member(email=f"t{n}@example.com") for n in range(5)]
    tags.get_or_create_tag(session, "purchased-12")
    tags.add_tag(session, members[0], "purchased-12", applied_by="owner")
    session.commit()
    wanted = [tags.Tagging(m, "purchased-12", "event", f"order {m.id}", f"key-{m.id}") for m in members]
    wanted.append(tags.Tagging(members[1], "purchased-12", "event", "a later line", "key-again"))
    with heard(signals.members_tagged) as calls, statements_sent(session) as statements:
        added = tags.tag_members(session, wanted)
    # One INSERT for all; the tag ids are read once because a member already carried the tag.
    assert len([s for s in statements if "member_tags" in s.lower() and s.lstrip().upper().startswith(("WITH", "INSERT"))]) == 1
    assert [t.member.email for t in added] == [f"t{n}@example.com" for n in range(1, 5)]
    assert len(calls) == 1 and [e["event_key"] for e in calls[0]["events"]] == [f"key-{m.id}" for m in members[1:]]
    session.commit()
    source = session.scalar(select(MemberTag.source).where(MemberTag.member_id == members[1].id))
    assert source == f"order {members[1].id}"  # the first tagging of a member with a name applies it


def test_a_tag_used_for_the_first_time_is_created(session):
    members = [factories.make_member(email=f"f{n}@example.com") for n in range(3)]
    session.commit()
    added = tags.tag_members(session, [tags.Tagging(m, "Brand-New", "owner", None, f"k{m.id}") for m in members])
    session.commit()
    assert len(added) == 3
    tag = session.scalar(select(Tag).where(Tag.name == "brand-new"))
    assert sorted(session.scalars(select(MemberTag.member_id).where(MemberTag.tag_id == tag.id))) == sorted(
        m.id for m in members)


def test_automation_events_for_many_members_are_recorded_once_each(session):
    members = [factories.make_member(email=f"e{n}@example.com") for n in range(4)]
    session.commit()
    events = [dict(member=m, event_key=f"card:{m.id}") for m in members] + [
        dict(member=members[0], event_key=f"card:{members[0].id}")]
    triggers.fire_many(session, "card_updated", events[:1])  # the default automations appear on first use
    session.commit()
    rows = triggers.fire_many(session, "card_updated", events)
    assert rows[0] is None and rows[-1] is None  # seen before, and twice in the batch
    assert [r is not None for r in rows[1:4]] == [True, True, True]
    session.commit()
    keys = session.scalars(select(AutomationEvent.event_key).where(AutomationEvent.trigger == "card_updated"))
    assert sorted(keys) == sorted(f"card:{m.id}" for m in members)
    tagged = session.scalars(select(MemberTag.member_id).join(Tag).where(Tag.name == "card-updated")).all()
    assert sorted(tagged) == sorted(m.id for m in members)  # the built-in event tag, applied set-based


def test_emails_for_a_batch_are_one_insert_and_one_delivery_job(session):
    messages = [("login_link", f"m{n}@example.com", {"member_name": "M", "login_url": "https://x.example/login/t"},
                 f"batch:{n}", None) for n in range(3)]
    with statements_sent(session) as statements:
        ids = email_services.enqueue_many(session, messages + [messages[0]])
    assert len(ids) == 3
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT INTO OUTBOUND_EMAILS")]) == 1
    assert session.info["coursegate_after_commit"] == [("emails.deliver_many", (ids,))]
    session.commit()
    assert len(session.scalars(select(OutboundEmail)).all()) == 3

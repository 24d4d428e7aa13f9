"""Owner API for courses, levels, members and grants. Views parse, call, serialise."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import or_, select

from extensions import db
from membership import auth, bulk, courses, grants, history, services
from membership.errors import GrantNotFound, MemberNotFound
from membership.models import Course, Grant, Level, Member
from membership.schemas import (BulkUpdateIn, BulkUpdateOut, CourseArgs, CourseIn, CourseOut, CourseUpdate, LevelUpdate, GrantArgs, GrantIn,
                                GrantOut, LevelIn, LevelOut, MemberArgs, MemberIn, MemberOut, MemberUpdate,
                                RevokeIn)
from pagination import PAGE_SIZE, SelectPage

blp = Blueprint("membership_api", __name__, url_prefix="/api/v1",
                description="Courses, access levels, members and grants.")
# The access check (GET /api/v1/access) is membership/access_api.py: it checks the key in its own statement.
blp.before_request(auth.require_owner)

ITEM = ["PATCH", "PUT"]


# --- courses ---------------------------------------------------------------------------------------

@blp.route("/courses", methods=["GET"])
@blp.arguments(CourseArgs, location="query", as_kwargs=True)
@blp.response(200, CourseOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_courses(status=None):
    """List courses, oldest first."""
    query = select(Course).order_by(Course.id)
    if status:
        query = query.where(Course.status == status)
    return query


@blp.route("/courses", methods=["POST"])
@blp.arguments(CourseIn)
@blp.response(201, CourseOut)
def create_course(data):
    """Create a course (draft unless told otherwise)."""
    course = courses.create_course(db.session, **data)
    return course


@blp.route("/courses/<int:course_id>", methods=["GET"])
@blp.response(200, CourseOut)
def get_course(course_id):
    return courses.get_course(db.session, course_id)


@blp.route("/courses/<int:course_id>", methods=ITEM)
@blp.arguments(CourseUpdate)
@blp.response(200, CourseOut)
def update_course(data, course_id):
    """Change a course's title, slug or status (publish it with ``{"status": "published"}``)."""
    course = courses.update_course(db.session, courses.get_course(db.session, course_id), data)
    return course


@blp.route("/courses/<int:course_id>", methods=["DELETE"])
@blp.response(204)
def delete_course(course_id):
    courses.delete_course(db.session, courses.get_course(db.session, course_id))


# --- levels ----------------------------------------------------------------------------------------

@blp.route("/levels", methods=["GET"])
@blp.response(200, LevelOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_levels():
    """List access levels with the courses each opens."""
    return select(Level).order_by(Level.id)


@blp.route("/levels", methods=["POST"])
@blp.arguments(LevelIn)
@blp.response(201, LevelOut)
def create_level(data):
    """Create an access level (a bundle of courses); ``duration_days`` null means lifetime."""
    level = courses.create_level(db.session, **data)
    return level


@blp.route("/levels/<int:level_id>", methods=["GET"])
@blp.response(200, LevelOut)
def get_level(level_id):
    return courses.get_level(db.session, level_id)


@blp.route("/levels/<int:level_id>", methods=ITEM)
@blp.arguments(LevelUpdate)
@blp.response(200, LevelOut)
def update_level(data, level_id):
    level = courses.update_level(db.session, courses.get_level(db.session, level_id), data)
    return level


@blp.route("/levels/<int:level_id>", methods=["DELETE"])
@blp.response(204)
def delete_level(level_id):
    """Delete a level that no grant uses (409 ``level_in_use`` otherwise)."""
    courses.delete_level(db.session, courses.get_level(db.session, level_id))


# --- members and grants ----------------------------------------------------------------------------

def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


@blp.route("/members", methods=["GET"])
@blp.arguments(MemberArgs, location="query", as_kwargs=True)
@blp.response(200, MemberOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_members(email=None, q=None):
    """List members; ``?email=`` finds one by email in any case, ``?q=`` searches email and name."""
    query = select(Member).order_by(Member.id)
    if email is not None:
        query = query.where(Member.email == email.strip().lower())
    if q:
        # %, _ and \ in the search are literal characters, not wildcards.
        literal = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{literal}%"
        query = query.where(or_(Member.email.like(pattern, escape="\\"), Member.name.ilike(pattern, escape="\\")))
    return query


@blp.route("/members", methods=["POST"])
@blp.arguments(MemberIn)
@blp.response(201, MemberOut)
def create_member(data):
    """Create a member by hand (no welcome email: grant a level or send a login link for that)."""
    member = services.create_member(db.session, data["email"], name=data["name"],
                                    external_source=data["external_source"])
    member.phone = data.get("phone")
    return member


@blp.route("/members/bulk-update", methods=["POST"])
@blp.arguments(BulkUpdateIn)
@blp.response(200, BulkUpdateOut)
def bulk_update_members(data):
    """Set ``external_source`` for many members: by ``member_ids``, by ``level_id`` or by ``emails`` (one of them).

    Set-based; reports how many matched and changed, and which emails or ids were not found."""
    result = bulk.set_external_source(db.session, data["external_source"], member_ids=data.get("member_ids"),
                                      level_id=data.get("level_id"), emails=data.get("emails"))
    return result.as_dict()


@blp.route("/members/<int:member_id>", methods=["GET"])
@blp.response(200, MemberOut)
def get_member(member_id):
    return _member(member_id)


@blp.route("/members/<int:member_id>", methods=ITEM)
@blp.arguments(MemberUpdate)
@blp.response(200, MemberOut)
def update_member(data, member_id):
    """Change email, name, phone or external source (409 ``duplicate_email`` when the email is taken); each
    change is recorded in the member's history, and a Keap-linked member keeps their stored contact."""
    member = _member(member_id)
    history.update_profile(db.session, member, data, by="owner API")
    return member


@blp.route("/members/<int:member_id>/grants", methods=["GET"])
@blp.arguments(GrantArgs, location="query", as_kwargs=True)
@blp.response(200, GrantOut(many=True))
def list_grants(member_id, status=None):
    """Every grant of a member, current and past."""
    member = _member(member_id)
    query = select(Grant).where(Grant.member_id == member.id).order_by(Grant.id)
    if status:
        query = query.where(Grant.status == status)
    return db.session.scalars(query).unique().all()


@blp.route("/members/<int:member_id>/grants", methods=["POST"])
@blp.arguments(GrantIn)
@blp.response(201, GrantOut)
def create_grant(data, member_id):
    """Grant a level by hand; ``ends_at`` defaults to the level's duration (or lifetime)."""
    member = _member(member_id)
    level = courses.levels_by_ids(db.session, [data["level_id"]], field="level_id")[0]
    grant = grants.open_grant(db.session, member, level, starts_at=data["starts_at"], ends_at=data["ends_at"],
                              note=data["note"])
    return grant


def _grant(grant_id: int) -> Grant:
    grant = db.session.get(Grant, grant_id)
    if grant is None:
        raise GrantNotFound()
    return grant


@blp.route("/grants/<int:grant_id>", methods=["GET"])
@blp.response(200, GrantOut)
def get_grant(grant_id):
    return _grant(grant_id)


@blp.route("/grants/<int:grant_id>/revoke", methods=["POST"])
@blp.arguments(RevokeIn)
@blp.response(200, GrantOut)
def revoke_grant(data, grant_id):
    """Revoke one grant now; other grants of the same level keep their access."""
    grant = grants.revoke_one(db.session, _grant(grant_id), data["reason"])
    return grant

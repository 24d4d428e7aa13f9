"""The owner's catalogue: courses and the access levels that open them."""

from __future__ import annotations

from sqlalchemy import exists, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from emails.placeholders import Link
from errors import Unprocessable
from membership.errors import CourseNotFound, DuplicateSlug, LevelInUse, LevelNotFound
from membership.models import Course, CourseStatus, Grant, Level, level_courses


def get_course(session: Session, course_id: int) -> Course:
    course = session.get(Course, course_id)
    if course is None:
        raise CourseNotFound()
    return course


def get_level(session: Session, level_id: int) -> Level:
    level = session.get(Level, level_id)
    if level is None:
        raise LevelNotFound()
    return level


def _flush_unique_slug(session: Session, kind: str, slug: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateSlug(f"A {kind} with the slug {slug!r} already exists.") from None


def create_course(session: Session, *, title: str, slug: str, status: str = CourseStatus.DRAFT,
                  url: str | None = None) -> Course:
    course = Course(title=title.strip(), slug=slug, status=status, url=url or None)
    session.add(course)
    _flush_unique_slug(session, "course", slug)
    return course


def update_course(session: Session, course: Course, changes: dict) -> Course:
    for field in ("title", "slug", "status", "url"):
        if field in changes:
            value = changes[field]
            if field == "title":
                value = value.strip()
            elif field == "url":
                value = value or None
            setattr(course, field, value)
    _flush_unique_slug(session, "course", course.slug)
    return course


def delete_course(session: Session, course: Course) -> None:
    session.delete(course)
    session.flush()


def course_links(levels: list[Level]) -> list[Link]:
    """The published courses these levels open, each once, titled and linked to where it lives (if set):
    what the welcome and "access added" emails list."""
    if not levels:
        return []
    if all("courses" not in inspect(level).unloaded for level in levels):  # loaded with the levels already
        seen: dict[int, Link] = {}
        for level in levels:
            for course in level.courses:
                if course.status == CourseStatus.PUBLISHED:
                    seen.setdefault(course.id, Link(course.title, course.url))
        return list(seen.values())
    # Else one statement for every level (an order with a bump has two), in the levels' order, then the courses'.
    position = {level.id: index for index, level in enumerate(levels)}
    rows = object_session(levels[0]).execute(
        select(level_courses.c.level_id, Course.id, Course.title, Course.url)
        .join(Course, Course.id == level_courses.c.course_id)
        .where(level_courses.c.level_id.in_(list(position)), Course.status == CourseStatus.PUBLISHED)).all()
    seen = {}
    for _, course_id, title, url in sorted(rows, key=lambda row: (position[row[0]], row[1])):
        seen.setdefault(course_id, Link(title, url))
    return list(seen.values())


def any_published_course(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(Course.status == CourseStatus.PUBLISHED))))


def _by_ids(session: Session, model, ids: list[int], *, field: str, noun: str, code: str) -> list:
    """The rows with these ids, in the order given, or a 422 naming every id that does not exist."""
    unique = list(dict.fromkeys(ids))
    found = {row.id: row for row in session.scalars(select(model).where(model.id.in_(unique)))}
    missing = [i for i in unique if i not in found]
    if missing:
        raise Unprocessable(f"No {noun} has the id {missing[0]}.", code=code,
                            errors={field: [f"Unknown {noun} id(s): {', '.join(map(str, missing))}"]})
    return [found[i] for i in unique]


def courses_by_ids(session: Session, ids: list[int], field: str = "course_ids") -> list[Course]:
    return _by_ids(session, Course, ids, field=field, noun="course", code="course_not_found")


def levels_by_ids(session: Session, ids: list[int], field: str = "level_ids") -> list[Level]:
    return _by_ids(session, Level, ids, field=field, noun="access level", code="level_not_found")


def create_level(session: Session, *, name: str, slug: str, course_ids: list[int],
                 duration_days: int | None = None) -> Level:
    level = Level(name=name.strip(), slug=slug, duration_days=duration_days,
                  courses=courses_by_ids(session, course_ids))
    session.add(level)
    _flush_unique_slug(session, "level", slug)
    return level


def update_level(session: Session, level: Level, changes: dict) -> Level:
    if "course_ids" in changes:
        level.courses = courses_by_ids(session, changes["course_ids"])
    for field in ("name", "slug", "duration_days"):
        if field in changes:
            value = changes[field]
            setattr(level, field, value.strip() if field == "name" else value)
    _flush_unique_slug(session, "level", level.slug)
    return level


def delete_level(session: Session, level: Level) -> None:
    if session.scalar(select(exists().where(Grant.level_id == level.id))):
        raise LevelInUse()
    try:
        with session.begin_nested():
            session.delete(level)
            session.flush()
    except IntegrityError:  # another domain still points at it (a subscription plan, say)
        raise LevelInUse() from None

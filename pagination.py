"""Paginated listings: smorest's ``X-Pagination`` header over a SQLAlchemy ``Select``."""

from __future__ import annotations

from flask_smorest import Page
from sqlalchemy import func, select

from extensions import db


class SelectPage(Page):
    @property
    def item_count(self) -> int:
        counted = self.collection.order_by(None).subquery()
        return db.session.scalar(select(func.count()).select_from(counted)) or 0

    @property
    def items(self):
        params = self.page_params
        if params.first_item > MAX_OFFSET:  # a page past any the database could hold is simply empty
            return []
        query = self.collection.offset(params.first_item).limit(params.page_size)
        return db.session.scalars(query).unique().all()


MAX_OFFSET = 2**62  # below the 64-bit integers SQLite and PostgreSQL take for OFFSET

PAGE_SIZE = {"page_size": 50, "max_page_size": 500}

"""Blueprint "admin" at /admin: the owner's dashboard. Each area's routes live in a module beside this one.

Later domains plug in through admin.pages.blueprint rather than editing the areas:
- ``NAV``: the sidebar (endpoint, label).
- ``MEMBER_SECTIONS``: extra panels on a member's page (orders, events, tags, subscriptions: member_panels.py),
  each a template plus a loader ``(session, member) -> context``.
- ``DASHBOARD_COUNTS``: extra dashboard figures, e.g. "events needing attention" (events.py).
"""

from admin.pages.blueprint import bp

# Each page module adds its routes to ``bp`` when imported.
from admin.pages import account, catalog, dashboard, emails, integrations, members  # noqa: E402,F401
from admin.pages import automations, billing, events, invitations, member_panels, reports  # noqa: E402,F401
from admin.pages import automation_forms, bulk_members, member_profile  # noqa: E402,F401

__all__ = ["bp"]

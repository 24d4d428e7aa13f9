"""What is switched on, read once per transaction: whether the default rules were installed, which triggers
have enabled rules, which triggers enabled webhook endpoints listen to, and which integrations have their own
event tag names.

Most events (an order, the tag it applies) have no rule and no endpoint: this snapshot lets ``fire`` skip
their queries. It costs one small query per transaction and is dropped when the transaction ends (commit,
rollback or close), at every savepoint rollback, and as soon as this session writes a rule, an endpoint, a
setting or tag names, so the owner's changes take effect in every process from the next transaction on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import String, cast, event, literal, select, union_all
from sqlalchemy.orm import Session, object_session

from automations.models import AutomationRule, AutomationSetting, EventTagNames, WebhookEndpoint
from sqlutil import transaction_scoped

DEFAULTS_MARKER = "defaults_installed"
_KEY = transaction_scoped("coursegate_automations_active")

_QUERY = union_all(
    select(literal("defaults"), AutomationSetting.key).where(AutomationSetting.key == DEFAULTS_MARKER),
    select(literal("rule"), AutomationRule.trigger).where(AutomationRule.enabled.is_(True)).distinct(),
    select(literal("endpoint"), cast(WebhookEndpoint.events, String)).where(WebhookEndpoint.enabled.is_(True)),
    select(literal("tag_names"), cast(EventTagNames.integration_id, String)),
)


@dataclass(frozen=True)
class Active:
    defaults_installed: bool
    rule_triggers: frozenset[str]
    endpoint_triggers: frozenset[str]  # "*" when an endpoint takes every event
    named_integrations: frozenset[int]

    def has_rules(self, trigger: str) -> bool:
        return trigger in self.rule_triggers

    def has_endpoints(self, trigger: str) -> bool:
        return "*" in self.endpoint_triggers or trigger in self.endpoint_triggers


def get(session: Session) -> Active:
    found = session.info.get(_KEY)
    if found is None:
        rows = session.execute(_QUERY).all()
        found = session.info[_KEY] = Active(
            defaults_installed=any(kind == "defaults" for kind, _ in rows),
            rule_triggers=frozenset(value for kind, value in rows if kind == "rule"),
            endpoint_triggers=frozenset(name for kind, value in rows if kind == "endpoint"
                                        for name in (json.loads(value) or [])),
            named_integrations=frozenset(int(value) for kind, value in rows if kind == "tag_names"),
        )
    return found


def forget(session: Session) -> None:
    session.info.pop(_KEY, None)


def _forget_for(_mapper, _connection, target) -> None:
    session = object_session(target)
    if session is not None:
        forget(session)


for _model in (AutomationRule, AutomationSetting, EventTagNames, WebhookEndpoint):
    for _name in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _name, _forget_for)

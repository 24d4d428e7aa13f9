"""What an automation rule's actions see: the recorded event plus the objects it is about."""

from __future__ import annotations

from dataclasses import dataclass, field

from automations.models import AutomationEvent
from membership.models import Level, Member


@dataclass
class Event:
    """What actions see: the recorded event plus the objects it is about."""

    row: AutomationEvent
    member: Member
    level: Level | None
    context: dict = field(default_factory=dict)

    @property
    def trigger(self) -> str:
        return self.row.trigger

    @property
    def key(self) -> str:
        return self.row.event_key

    @property
    def depth(self) -> int:
        return self.row.depth

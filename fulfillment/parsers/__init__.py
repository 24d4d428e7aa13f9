"""Cart payloads -> one normalised :class:`OrderEvent`, one module per cart: ``thrivecart``, ``stripe``,
``generic`` (our documented format) and ``keap`` (a campaign's HTTP Post); ``events`` holds what they share.

Each cart has two steps: ``decode_*`` turns the raw body into a tree (400 ``unparseable_body`` when it
cannot), ``*_event`` reads the tree. ``*_event`` never raises for odd content: what it cannot use becomes
an ``OrderEvent`` with a ``problem`` (stored as ``needs_attention``), so a cart is never refused for a
payload we merely do not understand. The names below are the ones the rest of fulfillment reads.
"""

from fulfillment.parsers.events import ITEM_TYPES, MAX_DEPTH, Action, Line, OrderEvent, decode_json
from fulfillment.parsers.generic import GENERIC_EVENTS, GenericEventSchema, generic_event
from fulfillment.parsers.stripe import stripe_event, stripe_lines
from fulfillment.parsers.thrivecart import (TC_ACTIONS, decode_thrivecart, read_thrivecart, strip_thrivecart_secret,
                                            thrivecart_dedupe_key, thrivecart_event, thrivecart_event_type)

__all__ = ["ITEM_TYPES", "MAX_DEPTH", "Action", "Line", "OrderEvent", "decode_json", "GENERIC_EVENTS",
           "GenericEventSchema", "generic_event", "stripe_event", "stripe_lines", "TC_ACTIONS", "decode_thrivecart",
           "read_thrivecart", "strip_thrivecart_secret", "thrivecart_dedupe_key", "thrivecart_event", "thrivecart_event_type"]

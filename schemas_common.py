"""Pieces shared by every domain's schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

SLUG = validate.Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                       error="Use lower-case letters, digits and single hyphens, e.g. 'pro-course'.")


class StrictSchema(ma.Schema):
    """Our own API: unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = ma.RAISE


class ExternalId(ma.fields.String):
    """A cart's id: carts send these as strings or numbers; we keep strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            value = str(value)
        result = super()._deserialize(value, attr, data, **kwargs)
        result = result.strip()
        if not result:
            raise ma.ValidationError("Must not be empty.")
        return result


class JsonBoolean(ma.fields.Boolean):
    """true or false in a JSON body: not 0, 1, "yes" or "on" (the spec says boolean, so a client sends one)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryArgs(ma.Schema):
    """Query strings: paginated listings also carry smorest's ``page``/``page_size``, parsed separately."""

    class Meta:
        unknown = ma.EXCLUDE

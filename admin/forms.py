"""Flask-WTF forms for the admin pages. The CSRF token is checked for every POST by the blueprint
(``csrf.protect``); the forms add field validation with messages an owner can act on."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateField, DecimalField, FieldList, Form, FormField, IntegerField, PasswordField,
                     RadioField, SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField, URLField)
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

SLUG_RULE = Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                   message="Use lower-case letters, digits and single hyphens, e.g. 'pro-course'.")
REQUIRED = "This field is required."


def strip(value):
    return value.strip() if isinstance(value, str) else value


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes: easier to use than a multi-select on a tablet and with a keyboard."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SignInForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(REQUIRED), Length(max=320)], filters=[strip])
    password = PasswordField("Password", validators=[DataRequired(REQUIRED)])


class ApiKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(REQUIRED), Length(max=100)], filters=[strip],
                       description="What uses this key, e.g. 'my WordPress site'.")


class CourseForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(REQUIRED), Length(max=200)], filters=[strip])
    slug = StringField("Slug", validators=[DataRequired(REQUIRED), Length(max=100), SLUG_RULE], filters=[strip],
                       description="Used in the access check (?course=…). Lower-case letters, digits, hyphens.")
    status = SelectField("Status", choices=[SelectChoice("draft", "Draft"), SelectChoice("published", "Published")], default="draft")
    url = URLField("Course URL", validators=[Optional(), URL(require_tld=False), Length(max=500)], filters=[strip],
                   description="Where the course lives on your site; members find it linked from their account "
                               "and the welcome email.")


class LevelForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(REQUIRED), Length(max=200)], filters=[strip])
    slug = StringField("Slug", validators=[DataRequired(REQUIRED), Length(max=100), SLUG_RULE], filters=[strip])
    course_ids = MultiCheckboxField("Courses this level opens", coerce=int)
    duration_days = IntegerField("Days of access", validators=[Optional(), NumberRange(min=1, max=36500)],
                                 description="Leave empty for lifetime access.")


KIND_CHOICES = [SelectChoice("thrivecart", "ThriveCart"), SelectChoice("stripe", "Stripe"),
                SelectChoice("generic", "Another cart (signed webhook)"),
                SelectChoice("keap", "Keap / Infusionsoft (campaign HTTP Post)")]
CANCEL_CHOICES = [SelectChoice("period_end", "At the end of the paid period"), SelectChoice("immediately", "Immediately")]


# The settings only some kinds of cart use (the rest apply to every kind). A Keap integration's key is in
# its Post URL, and Keap sends neither test orders nor line items to read.
KIND_FIELDS = {"secret": {"thrivecart", "stripe", "generic"}, "api_key": {"stripe"},
               "accept_test_orders": {"thrivecart", "stripe", "generic"}}
SECRET_HINTS = {"thrivecart": "Your ThriveCart secret word (Settings → API & webhooks).",
                "stripe": "The endpoint's whsec_… signing secret.",
                "generic": "The key your cart signs deliveries with."}


class IntegrationSettingsForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(REQUIRED), Length(max=200)], filters=[strip])
    secret = StringField("Secret", validators=[Optional(), Length(min=8, max=255)], filters=[strip],
                         description="ThriveCart: your secret word (Settings → API & webhooks). Stripe: the "
                                     "whsec_… signing secret. Another cart: leave empty to generate one. "
                                     "Leave empty when editing to keep the current secret.")
    api_key = StringField("Stripe restricted API key", validators=[Optional(), Length(max=255)], filters=[strip],
                          description="Stripe only: lets Coursegate read a Checkout Session's line items.")
    accept_test_orders = BooleanField("Grant access for test orders")
    cancel_access = SelectField("When a subscription is cancelled, end access", choices=CANCEL_CHOICES)
    grace_days = IntegerField("Grace days after a failed payment", default=7,
                              validators=[Optional(), NumberRange(min=0, max=90)])
    card_update_url = URLField("Card update page", validators=[Optional(), URL(require_tld=False), Length(max=500)],
                               filters=[strip], description="Where a failed-payment email sends the member.")
    manage_subscriptions_url = URLField(
        "Subscription management page", validators=[Optional(), URL(require_tld=False), Length(max=500)],
        filters=[strip], description="Where members manage the subscriptions this cart bills, e.g. your "
                                     "ThriveCart customer hub; linked from their billing page.")
    access_added_email = BooleanField("Email existing members when an order gives them more access",
                                      description="New members always get the welcome email.")

    def for_kind(self, kind: str) -> None:
        """Keep only the fields this kind of cart uses (an edit form, whose kind is fixed)."""
        for name, kinds in KIND_FIELDS.items():
            if kind not in kinds and name in self:
                delattr(self, name)
        if "secret" in self and kind in SECRET_HINTS:
            self.secret.description = SECRET_HINTS[kind] + " Leave empty to keep the current one."

    def settings(self) -> dict:
        data = {"name": self.name.data,
                "cancel_access": self.cancel_access.data,
                "grace_days": 7 if self.grace_days.data is None else self.grace_days.data,
                "card_update_url": self.card_update_url.data or None,
                "manage_subscriptions_url": self.manage_subscriptions_url.data or None,
                "access_added_email": self.access_added_email.data}
        if "accept_test_orders" in self:
            data["accept_test_orders"] = self.accept_test_orders.data
        if "secret" in self and self.secret.data:
            data["secret"] = self.secret.data
        if "api_key" in self and self.api_key.data:
            data["api_key"] = self.api_key.data
        return data


class IntegrationForm(IntegrationSettingsForm):
    kind = SelectField("Cart", choices=KIND_CHOICES, default="thrivecart")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.kind.data in ("thrivecart", "stripe") and not self.secret.data:
            self.secret.errors = [*self.secret.errors, "Enter the secret the cart signs its webhooks with."]
            ok = False
        return ok

    def settings(self) -> dict:
        data = {"kind": self.kind.data, **super().settings()}
        for name, kinds in KIND_FIELDS.items():
            if self.kind.data not in kinds:
                data.pop(name, None)
        return data


class ProductPickForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form: it only navigates

    product_id = StringField("Cart product id", validators=[DataRequired(REQUIRED), Length(max=100)],
                             filters=[strip], description="ThriveCart: the number in the product's URL, e.g. 12.")


class OptionRow(Form):
    ref = StringField("Id", validators=[Optional(), Length(max=100)], filters=[strip])
    level_ids = MultiCheckboxField("Levels", coerce=int)

    def validate_level_ids(self, field):
        if self.ref.data and not field.data:
            raise ValidationError("Tick at least one level, or clear the id to remove this row.")
        if field.data and not self.ref.data:
            raise ValidationError("Enter the id this row is for.")


class _RowsForm(FlaskForm):
    ROW_LISTS: tuple[str, ...] = ()

    def row_lists(self):
        return [getattr(self, name) for name in self.ROW_LISTS]

    def set_level_choices(self, choices: list[SelectChoice]) -> None:
        for name in self._fields:
            if isinstance(self._fields[name], MultiCheckboxField):
                self._fields[name].choices = choices
        for rows in self.row_lists():
            for row in rows:
                row.form.level_ids.choices = choices

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for rows in self.row_lists():
            refs = [row.form.ref.data for row in rows if row.form.ref.data]
            duplicates = sorted({ref for ref in refs if refs.count(ref) > 1})
            if duplicates:
                rows.errors.append(f"Each id once, please: {', '.join(duplicates)} appears more than once.")
                ok = False
        return ok


class MappingForm(_RowsForm):
    ROW_LISTS = ("options",)

    mode = RadioField("Pricing options", default="all", choices=[
        SelectChoice("all", "The same level(s) for every pricing option"),
        SelectChoice("per_option", "A level per pricing option"),
    ])
    level_ids = MultiCheckboxField("Levels for every pricing option", coerce=int)
    options = FieldList(FormField(OptionRow), label="Levels per pricing option")
    bump_level_ids = MultiCheckboxField("Level(s) the bump unlocks", coerce=int)

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.mode.data == "per_option" and not any(row.form.ref.data for row in self.options):
            self.options.errors.append("Add at least one pricing option, or choose the same levels for all.")
            ok = False
        return ok


class FunnelForm(_RowsForm):
    ROW_LISTS = ("upsells", "downsells")

    upsells = FieldList(FormField(OptionRow), label="Upsells")
    downsells = FieldList(FormField(OptionRow), label="Downsells")


class MemberForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(REQUIRED), Length(max=320)], filters=[strip])
    name = StringField("Name", validators=[Optional(), Length(max=200)], filters=[strip])


class GrantForm(FlaskForm):
    level_id = SelectField("Level", coerce=int, validators=[DataRequired("Choose a level.")])
    ends_on = DateField("Access until (inclusive, UTC)", validators=[Optional()],
                        description="Leave empty for the level's own duration (or lifetime).")
    note = StringField("Reason", validators=[Optional(), Length(max=500)], filters=[strip])


class ExtendForm(FlaskForm):
    ends_on = DateField("New last day of access (UTC)", validators=[Optional()],
                        description="Leave empty for no end.")


class RevokeForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired("Say why, for the member's record."), Length(max=200)],
                         filters=[strip])



INTERVAL_CHOICES = [SelectChoice("day", "Day(s)"), SelectChoice("week", "Week(s)"), SelectChoice("month", "Month(s)"),
                    SelectChoice("year", "Year(s)")]


class PlanPauseFields:
    max_pause_days = IntegerField("Members may pause for up to (days)",
                                  validators=[Optional(), NumberRange(min=1, max=365)],
                                  description="Leave empty to offer no pause. Members pause and resume on their "
                                              "billing page; billing moves back by the days paused.")
    access_during_pause = BooleanField("Keep access while paused")

    def pause_settings(self) -> dict:
        return {"max_pause_days": self.max_pause_days.data, "access_during_pause": self.access_during_pause.data}


class PlanForm(PlanPauseFields, FlaskForm):
    name = StringField("Name", validators=[DataRequired(REQUIRED), Length(max=200)], filters=[strip])
    level_id = SelectField("Level it renews", coerce=int, validators=[DataRequired("Choose a level.")])
    amount = DecimalField("Price per interval", places=2, validators=[DataRequired(REQUIRED),
                                                                    NumberRange(min=0.01, max=1_000_000)],
                          description="In the currency below, e.g. 49.00. It cannot change after creation.")
    currency = StringField("Currency", default="usd", filters=[strip],
                           validators=[DataRequired(REQUIRED), Regexp(r"^[A-Za-z]{3}$", message=(
                               "Use a three-letter ISO 4217 code, e.g. 'usd'."))])
    interval_count = IntegerField("Every", default=1, validators=[DataRequired(REQUIRED), NumberRange(min=1, max=365)])
    interval_unit = SelectField("Interval", choices=INTERVAL_CHOICES, default="month")


class PlanRenameForm(PlanPauseFields, FlaskForm):
    name = StringField("Name", validators=[DataRequired(REQUIRED), Length(max=200)], filters=[strip])


class TagForm(FlaskForm):
    tag = StringField("Tag", validators=[DataRequired(REQUIRED), Length(max=100)], filters=[strip],
                       description="Adding or removing a tag runs the automations that listen for it.")


class ProfileForm(FlaskForm):
    """A member's profile. Checked by the API's ``MemberUpdate`` schema and service, not here, so the page and
    ``PATCH /api/v1/members/<id>`` accept and refuse the same things."""

    email = StringField("Email", validators=[DataRequired(REQUIRED)], filters=[strip])
    name = StringField("Name", filters=[strip])
    phone = StringField("Phone", filters=[strip], description="E.164 with the country code, e.g. +14155550123 "
                                                              "(for SMS card-update invitations).")
    external_source = StringField("External source", filters=[strip],
                                  description="Where the member came from, e.g. 'infusionsoft': a Keap source "
                                              "shows their Keap subscriptions on the billing page.")

    def changes(self) -> dict:
        """What the API would be sent: empty phone and source clear them."""
        return {"email": self.email.data or "", "name": self.name.data or "",
                "phone": self.phone.data or None, "external_source": self.external_source.data or None}


BULK_ACTIONS = [SelectChoice("set_external_source", "Set external source"), SelectChoice("add_tag", "Add tag"),
                SelectChoice("remove_tag", "Remove tag"), SelectChoice("grant_level", "Grant level")]


class BulkForm(FlaskForm):
    """A change to many members: the selected rows (``member_id``, repeated) or every member matching ``q``."""

    action = SelectField("Action", choices=BULK_ACTIONS, validators=[DataRequired("Choose an action.")])
    value = StringField("External source or tag", validators=[Optional(), Length(max=100)], filters=[strip],
                        description="For “Set external source” (empty clears it) and the tag actions.")
    level_id = SelectField("Level", coerce=int, validators=[Optional()], description="For “Grant level”.")
    everyone = BooleanField("Every member matching this search")
    q = StringField("Search", filters=[strip])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.action.data in ("add_tag", "remove_tag") and not self.value.data:
            self.value.errors = [*self.value.errors, "Enter the tag."]
            ok = False
        if self.action.data == "grant_level" and not self.level_id.data:
            self.level_id.errors = [*self.level_id.errors, "Choose a level."]
            ok = False
        return ok

    def argument(self):
        """What :func:`membership.bulk.apply` takes for the chosen action."""
        return self.level_id.data if self.action.data == "grant_level" else (self.value.data or None)



# --- automations ------------------------------------------------------------------------------------

ACTION_CHOICES = [SelectChoice("", "— no action —"), SelectChoice("add_tag", "Add a tag"),
                  SelectChoice("remove_tag", "Remove a tag"), SelectChoice("grant_level", "Grant a level"),
                  SelectChoice("revoke_level", "Revoke access"), SelectChoice("restore_access", "Restore access"),
                  SelectChoice("send_email", "Send an email"), SelectChoice("send_webhook", "Call a webhook")]
# Which of a row's fields each action uses (admin.js hides the others; without it the hints say so).
ACTION_FIELDS = {
    "add_tag": ("tag",), "remove_tag": ("tag",), "grant_level": ("level_id", "days"),
    "revoke_level": ("level_id", "after_days", "after_grace_days", "reason"), "restore_access": ("level_id",),
    "send_email": ("template", "subject", "body"), "send_webhook": ("endpoint_id",),
}


def _used_by(field: str) -> str:
    return " ".join(kind for kind, fields in ACTION_FIELDS.items() if field in fields)


class ActionRow(Form):
    """One "then" step of a rule. Checked by the API's action schemas, not here."""

    type = SelectField("Then", choices=ACTION_CHOICES, default="")
    tag = StringField("Tag", filters=[strip], render_kw={"data-for": _used_by("tag")},
                      description="Add / remove a tag.")
    level_id = SelectField("Level", coerce=int, render_kw={"data-for": _used_by("level_id")},
                           description="Grant: required. Revoke / restore: empty means the event's own access.")
    days = IntegerField("Days of access", validators=[Optional()], render_kw={"data-for": _used_by("days")},
                        description="Grant: empty means the level's own duration.")
    after_days = IntegerField("Revoke after days", validators=[Optional()],
                              render_kw={"data-for": _used_by("after_days")}, description="Revoke: empty means now.")
    after_grace_days = BooleanField("Revoke after the integration's grace days",
                                    render_kw={"data-for": _used_by("after_grace_days")})
    reason = StringField("Reason", filters=[strip], render_kw={"data-for": _used_by("reason")},
                         description="Revoke: recorded on the grant.")
    template = SelectField("Email", render_kw={"data-for": _used_by("template")})
    subject = StringField("Subject", filters=[strip], render_kw={"data-for": _used_by("subject")},
                          description="Only for the owner-written message; placeholders such as {member_name}.")
    body = TextAreaField("Message", filters=[strip], render_kw={"data-for": _used_by("body"), "rows": 4})
    endpoint_id = SelectField("Webhook endpoint", coerce=int, render_kw={"data-for": _used_by("endpoint_id")})

    def action(self) -> dict | None:
        """The action as the API takes it (only the fields of its type), or None for an empty row."""
        kind = self.type.data
        if not kind:
            return None
        action: dict = {"type": kind}
        for name in ACTION_FIELDS.get(kind, ()):
            value = getattr(self, name).data
            if name in ("level_id", "endpoint_id"):
                value = value or None
            if value in (None, "", False):
                continue
            action[name] = value
        return action


class RuleForm(FlaskForm):
    name = StringField("Name", filters=[strip], description="What the rule is for, e.g. 'VIP tag: email the "
                                                           "welcome pack'.")
    trigger = SelectField("Event")
    level_id = SelectField("Only for level", coerce=int, description="Only events about this level (optional).")
    product_id = StringField("Only for cart product", filters=[strip],
                             description="Only events about this cart product id (optional).")
    tag = StringField("Only for tag", filters=[strip],
                      description="Tag added / removed: only this tag. Other triggers: only members who carry it.")
    enabled = BooleanField("Enabled", default=True)
    actions = FieldList(FormField(ActionRow), label="Then, in order", min_entries=4, max_entries=20)

    def rule_data(self) -> dict:
        """The rule as ``POST /api/v1/automations`` takes it."""
        return {"name": self.name.data or "", "trigger": self.trigger.data, "level_id": self.level_id.data or None,
                "product_id": self.product_id.data or None, "tag": self.tag.data or None,
                "enabled": bool(self.enabled.data),
                "actions": [a for a in (row.form.action() for row in self.actions) if a is not None]}

    def row_index(self, posted_index: int) -> int:
        """The row an error for the ``posted_index``-th non-empty action belongs to."""
        filled = [i for i, row in enumerate(self.actions) if row.form.type.data]
        return filled[posted_index] if posted_index < len(filled) else 0


class EndpointForm(FlaskForm):
    url = StringField("URL", filters=[strip], description="Where to POST the events, e.g. "
                                                          "https://crm.example.com/hooks/coursegate.")
    description = StringField("Description", filters=[strip])
    events = MultiCheckboxField("Events", description="Choose “every event”, or the triggers to send.")
    enabled = BooleanField("Enabled", default=True)
    secret = StringField("Signing secret", filters=[strip],
                         description="Leave empty to generate one (when editing: to keep the current one). "
                                     "At least 16 characters.")

    def endpoint_data(self) -> dict:
        data = {"url": self.url.data or "", "description": self.description.data or "",
                "events": self.events.data or [], "enabled": bool(self.enabled.data)}
        if self.secret.data:
            data["secret"] = self.secret.data
        return data

"""Marshmallow schemas of every query and response of the API, and their wire formats.

Properties are camelCase (Umbraco.AI's names); Flask's JSON provider writes them
in alphabetical order, as Umbraco.AI does. Timestamps leave as UTC with exactly
three fraction digits: `2024-01-01T00:00:00.000Z`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from clickhouse.analytics import AUDIT_STATUSES, AuditFilter, Granularity, Period

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEK_NS = 7 * 24 * 3_600 * 10**9
MAX_TAKE = 1000
MAX_SKIP = 2**63 - 1

GRANULARITIES: dict[str, Granularity] = {
    "hourly": Granularity.HOUR,
    "daily": Granularity.DAY,
    "weekly": Granularity.WEEK,
    "monthly": Granularity.MONTH,
    "hour": Granularity.HOUR,
    "day": Granularity.DAY,
    "week": Granularity.WEEK,
    "month": Granularity.MONTH,
}
GRANULARITY_NAMES = ("Hourly", "Daily", "Weekly", "Monthly", "hour", "day", "week", "month")

# ISO 8601 date or date-time. Fractions keep up to nanoseconds (.NET sends 7
# digits). A space before the offset is a '+' that was not URL-encoded.
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|[+\- ]\d{2}(?::?\d{2})?)?$"
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_instant(text: str) -> int:
    """Nanoseconds since the epoch (UTC) of an ISO 8601 date-time; no offset means UTC."""
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(text)
    zone = match["zone"] or "+00:00"
    if zone in "Zz":
        zone = "+00:00"
    zone = "+" + zone[1:] if zone[0] == " " else zone
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[-2:]) if len(zone) > 3 else 0
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    local = datetime.fromisoformat(f"{match['date']}T{match['time'] or '00:00'}")
    # Integer arithmetic throughout: exact to the nanosecond, any year 1-9999.
    offset = timedelta(hours=hours, minutes=minutes) * sign
    delta = local.replace(tzinfo=UTC) - EPOCH - offset
    fraction = int((match["fraction"] or "0")[:9].ljust(9, "0"))
    return (delta.days * 86_400 + delta.seconds) * 10**9 + fraction


def format_instant(value: datetime | int) -> str:
    """`2024-01-01T00:00:00.000Z` for an aware datetime or UTC nanoseconds."""
    if isinstance(value, int):
        value = EPOCH + timedelta(microseconds=value // 1_000)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class Instant(fields.String):
    """An ISO 8601 date-time in a query, loaded as UTC nanoseconds since the epoch."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_instant(text)
        except (ValueError, OverflowError):
            raise ValidationError(f"{text!r} is not an ISO 8601 date-time, e.g. 2024-01-01T00:00:00Z") from None


class Timestamp(fields.String):
    """A UTC timestamp in a response, with exactly three fraction digits and Z."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_instant(value)


# Field types whose serialisation is a plain conversion (None stays None).
_PLAIN_CONVERSIONS: dict[type[fields.Field], Any] = {
    fields.Integer: int,
    fields.Float: float,
    fields.String: str,
    Timestamp: format_instant,
}


class CamelSchema(Schema):
    """Python attribute names, camelCase property names.

    A list of flat objects (a breakdown holds thousands of items) is dumped by
    one precompiled conversion per field instead of marshmallow's per-field
    machinery, about ten times faster; a schema with any other field type or a
    dump hook uses marshmallow. tests/unit/test_schema_dump.py holds the two
    to the same output.
    """

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = field_obj.data_key or _camel(field_name)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        plan = self._plain_plan()
        if plan is None or not (self.many if many is None else many):
            return super().dump(obj, many=many)
        return [
            {key: None if (value := getattr(item, attribute)) is None else convert(value) for key, attribute, convert in plan}
            for item in obj
        ]

    def _plain_plan(self) -> list[tuple[str, str, Any]] | None:
        if "_plan" not in self.__dict__:
            plain = not self._hooks[PRE_DUMP] and not self._hooks[POST_DUMP] and all(
                type(field) in _PLAIN_CONVERSIONS and not getattr(field, "as_string", False)
                for field in self.dump_fields.values()
            )
            self.__dict__["_plan"] = (
                [
                    (field.data_key or name, field.attribute or name, _PLAIN_CONVERSIONS[type(field)])
                    for name, field in self.dump_fields.items()
                ]
                if plain
                else None
            )
        return self.__dict__["_plan"]


# --- Analytics queries -----------------------------------------------------------


@dataclass(frozen=True)
class UsageQuery:
    period: Period
    granularity: Granularity


class GranularityField(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Granularity:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return GRANULARITIES[text.strip().lower()]
        except KeyError:
            raise ValidationError(
                f"{text!r} is not a granularity; use one of {', '.join(GRANULARITY_NAMES)} (case-insensitive)"
            ) from None


class UsageQuerySchema(Schema):
    start = Instant(
        data_key="from",
        required=True,
        error_messages={"required": "'from' is required: the start of the period, ISO 8601"},
        metadata={"format": "date-time", "description": "Start of the period, inclusive (ISO 8601; no offset means UTC)."},
    )
    end = Instant(
        data_key="to",
        required=True,
        error_messages={"required": "'to' is required: the end of the period (exclusive), ISO 8601"},
        metadata={"format": "date-time", "description": "End of the period, exclusive (ISO 8601; no offset means UTC)."},
    )
    granularity = GranularityField(
        metadata={
            "enum": list(GRANULARITY_NAMES),
            "description": (
                "Bucket size of the time series, case-insensitive. Default: Hourly when `to - from` "
                "is 7 days or less, else Daily. Weeks start on Monday."
            ),
        },
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "start" in data and "end" in data and data["start"] >= data["end"]:
            raise ValidationError("'from' must be before 'to'", field_name="from")

    @post_load
    def _query(self, data: dict[str, Any], **kwargs: Any) -> UsageQuery:
        start, end = data["start"], data["end"]
        granularity = data.get("granularity") or (Granularity.HOUR if end - start <= WEEK_NS else Granularity.DAY)
        return UsageQuery(Period(start, end), granularity)


# --- Analytics responses ---------------------------------------------------------


class SummarySchema(CamelSchema):
    total_requests = fields.Integer(required=True, metadata={"description": "Number of operations."})
    input_tokens = fields.Integer(required=True, metadata={"format": "int64", "description": "Sum of input tokens."})
    output_tokens = fields.Integer(required=True, metadata={"format": "int64", "description": "Sum of output tokens."})
    total_tokens = fields.Integer(
        required=True,
        metadata={"format": "int64", "description": "Sum of each operation's total (the emitter's, else input + output)."},
    )
    success_count = fields.Integer(required=True, metadata={"description": "Operations that succeeded."})
    failure_count = fields.Integer(
        required=True, metadata={"description": "Operations that failed (span status ERROR or `error.type` set)."}
    )
    success_rate = fields.Float(
        required=True, metadata={"description": "successCount / totalRequests, 0.0-1.0, not rounded; 0 without requests."}
    )
    average_duration_ms = fields.Integer(
        required=True, metadata={"description": "Total duration in ms / totalRequests, truncated; 0 without requests."}
    )


class TimeSeriesPointSchema(CamelSchema):
    timestamp = Timestamp(required=True, metadata={"format": "date-time", "description": "Start of the bucket (UTC)."})
    request_count = fields.Integer(required=True)
    input_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    output_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    total_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    success_count = fields.Integer(required=True)
    failure_count = fields.Integer(required=True)


class BreakdownItemSchema(CamelSchema):
    dimension = fields.String(required=True, metadata={"description": "Key of the group, or the unknown label."})
    dimension_name = fields.String(
        required=True, allow_none=True, metadata={"description": "Display name where the dimension has one, else null."}
    )
    request_count = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    percentage = fields.Float(required=True, metadata={"description": "Share of requests, 0-100, not rounded."})


# --- Audit logs ------------------------------------------------------------------


class StatusField(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        for status in AUDIT_STATUSES:
            if text.strip().lower() == status.lower():
                return status
        raise ValidationError(f"{text!r} is not a status; use one of {', '.join(AUDIT_STATUSES)}")


def _filter(description: str) -> fields.String:
    return fields.String(metadata={"description": description})


class AuditLogQuerySchema(CamelSchema):
    status = StatusField(metadata={"enum": list(AUDIT_STATUSES), "description": "Outcome."})
    user_id = _filter("Only operations of this user id.")
    profile_id = _filter("Only operations of this profile id.")
    provider_id = _filter("Only operations of this provider id (e.g. `openai`).")
    entity_id = _filter("Only operations about this content entity id.")
    from_ns = Instant(
        data_key="fromDate", metadata={"format": "date-time", "description": "Earliest start time, inclusive."}
    )
    to_ns = Instant(
        data_key="toDate", metadata={"format": "date-time", "description": "Latest start time, inclusive."}
    )
    search_text = _filter("Case-insensitive text in the model id or the error message.")
    # Bound to a UInt64 parameter: larger values wrapped around to the first page.
    skip = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_SKIP), metadata={"description": "Entries to skip."}
    )
    take = fields.Integer(
        load_default=100,
        validate=validate.Range(min=0, max=MAX_TAKE),
        metadata={"description": f"Entries to return, at most {MAX_TAKE}."},
    )

    @post_load
    def _filter(self, data: dict[str, Any], **kwargs: Any) -> AuditFilter:
        return AuditFilter(**data)


def _text(description: str = "") -> fields.String:
    return fields.String(required=True, allow_none=True, metadata={"description": description} if description else {})


class AuditLogItemSchema(CamelSchema):
    id = fields.String(required=True, metadata={"description": "Trace id + span id, 48 hex characters."})
    start_time = Timestamp(attribute="start_ns", required=True, metadata={"format": "date-time"})
    duration_ms = fields.Integer(required=True, metadata={"format": "int64"})
    status = fields.String(required=True, metadata={"enum": list(AUDIT_STATUSES)})
    capability = fields.String(
        required=True, metadata={"description": "Chat, Embedding, Media, Moderation or SpeechToText."}
    )
    provider_id = _text()
    model_id = _text("The requested model, else the response model.")
    profile_id = _text()
    profile_alias = _text()
    user_id = _text()
    user_name = _text()
    entity_id = _text()
    feature_type = _text()
    feature_id = _text()
    input_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    output_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    error_message = _text()


class MetadataSchema(CamelSchema):
    key = fields.String(required=True)
    value = fields.String(required=True)


class AuditLogDetailSchema(AuditLogItemSchema):
    end_time = Timestamp(attribute="end_ns", required=True, metadata={"format": "date-time"})
    entity_type = _text()
    total_tokens = fields.Integer(required=True, metadata={"format": "int64"})
    metadata = fields.List(
        fields.Nested(MetadataSchema),
        required=True,
        metadata={"description": "Span attributes without a column of their own, by key."},
    )
    trace_id = fields.String(required=True)
    span_id = fields.String(required=True)


class AuditLogPageSchema(CamelSchema):
    items = fields.List(fields.Nested(AuditLogItemSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "Entries matching the filters, over all pages."})


# An audit id is the trace id (32 hex) + the span id (16 hex): unique per
# operation, and the two halves are what the storage finds it by.
AUDIT_ID_PATTERN = "^[0-9a-fA-F]{48}$"


class AuditLogIdSchema(Schema):
    id = fields.String(
        required=True,
        validate=validate.Regexp(AUDIT_ID_PATTERN, error="'id' must be 48 hex characters (trace id + span id)"),
    )

    @post_load
    def _split(self, data: dict[str, Any], **kwargs: Any) -> tuple[str, str]:
        text = data["id"].lower()
        return text[:32], text[32:]

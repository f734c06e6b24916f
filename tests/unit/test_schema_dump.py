"""The fast list dump of flat response schemas writes exactly what marshmallow writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from marshmallow import Schema, fields, post_dump

from app.api import schemas
from app.api.schemas import CamelSchema, Timestamp

RESPONSE_SCHEMAS = [
    schemas.SummarySchema,
    schemas.TimeSeriesPointSchema,
    schemas.BreakdownItemSchema,
    schemas.AuditLogItemSchema,
]


def _value(field: fields.Field, rng: random.Random):
    if field.allow_none and rng.random() < 0.3:
        return None
    if isinstance(field, Timestamp):
        return rng.choice([datetime(2024, 1, 1, tzinfo=UTC), rng.randrange(0, 2**62)])
    if isinstance(field, fields.Integer):
        return rng.choice([0, 1, -5, 2**40, 2**63 - 1, rng.randrange(10**6)])
    if isinstance(field, fields.Float):
        return rng.choice([0.0, 100.0, 1 / 3, 12.5, rng.random() * 100])
    return rng.choice(["", "gpt-4o", "Åsa ✓ 漢字", "'); DROP TABLE x; --", "a\nb"])


def _items(schema: Schema, count: int, seed: int) -> list[SimpleNamespace]:
    rng = random.Random(seed)
    return [
        SimpleNamespace(**{(field.attribute or name): _value(field, rng) for name, field in schema.dump_fields.items()})
        for _ in range(count)
    ]


@pytest.mark.parametrize("schema_class", RESPONSE_SCHEMAS, ids=lambda c: c.__name__)
def test_the_fast_dump_equals_marshmallows(schema_class):
    schema = schema_class(many=True)
    assert schema._plain_plan() is not None, "expected a flat schema"
    items = _items(schema, 200, seed=len(schema_class.__name__))
    assert schema.dump(items) == Schema.dump(schema, items)
    assert schema.dump([]) == []


def test_a_single_object_and_schemas_with_other_fields_use_marshmallow():
    detail = schemas.AuditLogDetailSchema(many=True)
    assert detail._plain_plan() is None  # a nested list of metadata
    one = schemas.BreakdownItemSchema()
    item = _items(one, 1, seed=1)[0]
    assert one.dump(item) == Schema.dump(one, item)


def test_a_dump_hook_keeps_marshmallows_path():
    class Hooked(CamelSchema):
        request_count = fields.Integer()

        @post_dump
        def _double(self, data, **kwargs):
            return {**data, "requestCount": data["requestCount"] * 2}

    assert Hooked(many=True).dump([SimpleNamespace(request_count=2)]) == [{"requestCount": 4}]

"""TextParameter: large String parameters escaped by str.replace arrive in ClickHouse unchanged."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.binding import escape_str

from clickhouse.client import TextParameter

HOSTILE = [
    "",
    "plain",
    "it's",
    "back\\slash and \\' both",
    "`tick` 'quote' \"double\"",
    "tab\tnew\nline\r\ncarriage",
    "\\n is not a newline",
    "'); DROP TABLE operations; --",
    "{keys:String}",
    "NUL \x00 byte",
    "unicode ✓ Åsa 漢字 🚀",
    '{"ts": 1, "trace_id": "a\\"b"}\n{"ts": 2}',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_exactly_as_clickhouse_connect_escapes_a_str(text):
    assert str(TextParameter(text)) == escape_str(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_round_trips_through_clickhouse(database, text):
    result = database.client().query("SELECT {value:String}", parameters={"value": TextParameter(text)})
    assert result.result_rows[0][0] == text

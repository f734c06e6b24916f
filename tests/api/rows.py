"""Operation rows as the ingester stores them, for tests that write `operations` directly."""

from __future__ import annotations

from tests.support.rows import Operation, insert_rows  # noqa: F401 - re-exported for the API tests
from tests.api.reference import ns


def operation(start: str | int, number: int, **fields) -> Operation:
    """A first state (sign +1, version 1) with plain defaults; `start` is ISO text or UTC nanoseconds."""
    values = dict(
        timestamp_ns=start if isinstance(start, int) else ns(start), trace_id=f"{number:032x}", span_id=f"{number:016x}", parent_span_id="", sign=1, version=1,
        service_name="svc", scope_name="tests", scope_version="1", span_name="chat", capability="Chat", operation="chat",
        provider="openai", provider_raw="openai", request_model="gpt-4o", response_model="", profile_id="p-1",
        profile_alias="writer", user_id="u-1", user_name="Ada", feature_type="", feature_id="", entity_id="", entity_type="",
        input_tokens=100, output_tokens=20, total_tokens=120, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
        duration_ns=1_999_999, succeeded=True, error_type="", error_message="", streaming=False, conversation_id="",
        server_address="", attributes={},
    )
    values.update(fields)
    return Operation(**values)

"""Bugs the hostile suite found, each pinned by the smallest request that showed it.

1. A failed model call whose exception event was not valid protobuf (or, in
   JSON, whose event attributes had the wrong shape) was a 500 over HTTP and
   UNKNOWN over gRPC: events are decoded only when a failed call reads them,
   outside the request's decoding and its error handling.
2. A JSON time past the 64-bit range (endTimeUnixNano 10^40) passed decoding
   and validation, then broke the writer (orjson cannot write it): the export
   got 503, and storage was marked down, so other clients got 503 too.
3. A span whose bytes protobuf-python accepts but ClickHouse's reader does not
   (a declared field sent with another wire type, kept by Python as an
   unknown field) failed the insert with code 444, taken for an outage: 503
   and storage marked down, instead of refusing that one export.
4. Audit-log dates past the Int64 nanosecond range (fromDate=2263-01-01,
   toDate=1600-01-01) wrapped around in ClickHouse and matched everything.
5. An audit-log `skip` of 2^64 or more wrapped around to the first page.
"""

from __future__ import annotations

import random
import threading

import orjson
import pytest
import requests

from tests.hostile.payloads import JSON, PROTOBUF, START, Ids, _ld, marker, proto_span, wrap_span

SUMMARY = "/umbraco/ai/management/api/v1/audit-logs"


@pytest.fixture(scope="module")
def service(hostile_services):
    return hostile_services()


def post(service, body: bytes, media: str) -> requests.Response:
    return requests.post(f"{service.url}/v1/traces", data=body, headers={"Content-Type": media}, timeout=15)


def entry(service, trace: str, span: str) -> dict | None:
    response = requests.get(f"{service.url}{SUMMARY}/{trace}{span}", timeout=10)
    return response.json() if response.status_code == 200 else None


def test_a_failed_call_with_a_broken_exception_event_is_stored_without_it(service):
    ids = Ids(random.Random(1))
    trace, span = ids.trace(), ids.span()
    call = proto_span({"gen_ai.operation.name": "chat"}, trace=trace, span=span, status=2, message="boom")
    broken_event = _ld(2, b"\xff\xfe")  # an event whose name is not UTF-8
    response = post(service, wrap_span(call.SerializeToString() + _ld(11, broken_event)), PROTOBUF)
    assert response.status_code == 200, response.content
    stored = entry(service, trace, span)
    assert stored["status"] == "Failed" and stored["errorMessage"] == "boom"

    trace, span = ids.trace(), ids.span()
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace, "spanId": span, "startTimeUnixNano": str(START), "endTimeUnixNano": str(START + 1),
        "status": {"code": 2, "message": "boom"}, "events": [{"name": "exception", "attributes": "not a list"}],
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }]}]}]}
    response = post(service, orjson.dumps(document), JSON)
    assert response.status_code == 200, response.content
    assert entry(service, trace, span)["status"] == "Failed"


def test_a_json_time_past_64_bits_is_400_and_storage_stays_up(service):
    ids = Ids(random.Random(2))
    trace, span = ids.trace(), ids.span()
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace, "spanId": span, "startTimeUnixNano": str(START), "endTimeUnixNano": str(10**40),
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }]}]}]}
    response = post(service, orjson.dumps(document), JSON)
    assert response.status_code == 400
    assert "endTimeUnixNano must be an unsigned 64-bit integer" in response.json()["message"]
    valid = marker(ids, 0, PROTOBUF)
    assert post(service, valid.body, PROTOBUF).status_code == 200
    assert entry(service, *valid.keys[0]) is not None
    assert requests.get(f"{service.url}/health/ready", timeout=10).status_code == 200


def test_a_span_clickhouse_cannot_read_refuses_only_its_export(service):
    ids = Ids(random.Random(3))
    trace, span = ids.trace(), ids.span()
    call = proto_span({"gen_ai.operation.name": "chat"}, trace=trace, span=span).SerializeToString()
    # An attribute whose AnyValue has kvlist_value (field 6) as a varint: Python keeps it as an unknown field.
    poison = wrap_span(call + _ld(9, _ld(1, b"odd") + _ld(2, b"\x30\x01")))
    valid = [marker(ids, n, PROTOBUF) for n in range(8)]
    answers: dict[str, int] = {}

    def send(label: str, body: bytes) -> None:
        answers[label] = post(service, body, PROTOBUF).status_code

    # Sent together, so that the writer may group them into one insert.
    threads = [threading.Thread(target=send, args=("poison", poison))]
    threads += [threading.Thread(target=send, args=(f"valid {n}", payload.body)) for n, payload in enumerate(valid)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers.pop("poison") == 400
    assert set(answers.values()) == {200}, answers
    assert entry(service, trace, span) is None
    for payload in valid:
        assert entry(service, *payload.keys[0]) is not None
    assert requests.get(f"{service.url}/health/ready", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("params", "everything"),
    [
        ({"fromDate": "2263-01-01"}, False), ({"fromDate": "9999-12-31T23:59:59.9999999Z"}, False),
        ({"toDate": "1600-01-01"}, False), ({"toDate": "0001-01-01"}, False),
        ({"fromDate": "0001-01-01", "toDate": "9999-12-31"}, True), ({"toDate": "2263-01-01"}, True),
    ],
)
def test_audit_log_dates_beyond_the_nanosecond_range_keep_their_meaning(service, params, everything):
    ids = Ids(random.Random(4))
    valid = marker(ids, 0, PROTOBUF)
    assert post(service, valid.body, PROTOBUF).status_code == 200
    total = requests.get(f"{service.url}{SUMMARY}", params={"take": 0}, timeout=10).json()["total"]
    assert total >= 1
    found = requests.get(f"{service.url}{SUMMARY}", params={**params, "take": 0}, timeout=10).json()["total"]
    assert found == (total if everything else 0)


def test_an_audit_log_skip_past_64_bits_is_400_not_the_first_page(service):
    ids = Ids(random.Random(5))
    assert post(service, marker(ids, 0, PROTOBUF).body, PROTOBUF).status_code == 200
    response = requests.get(f"{service.url}{SUMMARY}", params={"skip": 2**64, "take": 1}, timeout=10)
    assert response.status_code == 400 and "skip" in response.json()["errors"]
    last = requests.get(f"{service.url}{SUMMARY}", params={"skip": 2**63 - 1, "take": 1}, timeout=10).json()
    assert last["items"] == [] and last["total"] >= 1

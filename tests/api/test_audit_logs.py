"""Audit logs: live states of single operations, filtered, paged, and one in detail."""

from __future__ import annotations

import pytest
import requests

from tests.api.reference import ns, stamp
from tests.api.rows import insert_rows, operation
from tests.support.otel import Recorder, export, http_exporter, ids

AUDIT = "/umbraco/ai/management/api/v1/audit-logs"

ROWS = [
    operation("2025-03-10T09:00:00", 1, entity_id="1057", entity_type="document", feature_type="prompt", feature_id="summarise",
              attributes={"gen_ai.request.temperature": "0.25", "deployment.environment": "test"}),
    operation("2025-03-10T10:00:00", 2, succeeded=False, error_type="rate_limit", error_message="Rate LIMIT exceeded",
              provider="anthropic", request_model="claude-3-haiku", user_id="", user_name=""),
    operation("2025-03-10T11:00:00", 3, request_model="", response_model="Mistral-Large", profile_id="p-2", profile_alias=""),
    operation("2025-03-10T12:00:00", 4, provider="", profile_id="", profile_alias=""),
    operation("2025-03-10T13:00:00", 5),  # corrected below: user u-1 -> u-2
    operation("2025-03-10T14:00:00", 6),  # cancelled below with no new state (it wrapped another call)
]
CORRECTED = ROWS[4]._replace(version=2, user_id="u-2", user_name="Bob")


def audit_id(row) -> str:
    return row.trace_id + row.span_id


@pytest.fixture(scope="module")
def audit(module_services):
    service = module_services(role="all")
    insert_rows(service.database, ROWS)
    insert_rows(service.database, [ROWS[4]._replace(sign=-1), CORRECTED, ROWS[5]._replace(sign=-1)])
    return service


def listing(service, **params) -> dict:
    response = requests.get(f"{service.url}{AUDIT}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def numbers(page: dict) -> list[int]:
    return [int(item["id"][32:], 16) for item in page["items"]]


def test_list_is_live_states_newest_first(audit):
    page = listing(audit)
    assert page["total"] == 5
    assert numbers(page) == [5, 4, 3, 2, 1], "the cancelled call is gone; the corrected one appears once"
    corrected = page["items"][0]
    assert corrected["userId"] == "u-2" and corrected["userName"] == "Bob"


def test_list_item_fields(audit):
    items = {item["id"]: item for item in listing(audit)["items"]}
    assert items[audit_id(ROWS[1])] == {
        "capability": "Chat",
        "durationMs": 1,
        "entityId": None,
        "errorMessage": "Rate LIMIT exceeded",
        "featureId": None,
        "featureType": None,
        "id": audit_id(ROWS[1]),
        "inputTokens": 100,
        "modelId": "claude-3-haiku",
        "outputTokens": 20,
        "profileAlias": "writer",
        "profileId": "p-1",
        "providerId": "anthropic",
        "startTime": "2025-03-10T10:00:00.000Z",
        "status": "Failed",
        "userId": None,
        "userName": None,
    }
    assert items[audit_id(ROWS[2])]["modelId"] == "Mistral-Large", "the response model when none was requested"
    assert items[audit_id(ROWS[3])]["providerId"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "Failed"}, [2]),
        ({"status": "succeeded"}, [5, 4, 3, 1]),
        ({"userId": "u-2"}, [5]),
        ({"userId": "u-1"}, [4, 3, 1]),
        ({"profileId": "p-2"}, [3]),
        ({"providerId": "anthropic"}, [2]),
        ({"entityId": "1057"}, [1]),
        ({"fromDate": "2025-03-10T11:00:00Z", "toDate": "2025-03-10T13:00:00Z"}, [5, 4, 3]),  # both inclusive
        ({"fromDate": "2025-03-10T11:00:00.000000001Z"}, [5, 4]),
        ({"toDate": "2025-03-10T11:00:00+01:00"}, [2, 1]),
        ({"searchText": "mistral"}, [3]),
        ({"searchText": "rate limit"}, [2]),
        ({"searchText": "GPT-4"}, [5, 4, 1]),
        ({"searchText": "nothing like it"}, []),
        ({"status": "Succeeded", "profileId": "p-1", "searchText": "gpt"}, [5, 1]),
    ],
)
def test_list_filters(audit, params, expected):
    page = listing(audit, **params)
    assert numbers(page) == expected
    assert page["total"] == len(expected)


def test_paging(audit):
    assert numbers(listing(audit, take=2)) == [5, 4]
    second = listing(audit, skip=2, take=2)
    assert numbers(second) == [3, 2] and second["total"] == 5
    beyond = listing(audit, skip=10)
    assert beyond == {"items": [], "total": 5}, "an empty page still says how many match"
    assert listing(audit, take=0) == {"items": [], "total": 5}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"take": 1001}, "take"),
        ({"take": -1}, "take"),
        ({"skip": -1}, "skip"),
        ({"skip": "many"}, "skip"),
        ({"status": "Exploded"}, "status"),
        ({"fromDate": "soon"}, "fromDate"),
    ],
)
def test_bad_list_parameters_are_400(audit, params, parameter):
    response = requests.get(f"{audit.url}{AUDIT}", params=params, timeout=10)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert parameter in body["errors"] and f"'{parameter}'" in body["detail"]
    if parameter == "take":
        assert "1000" in body["detail"]


def test_detail(audit):
    row = ROWS[0]
    response = requests.get(f"{audit.url}{AUDIT}/{audit_id(row).upper()}", timeout=10)
    assert response.status_code == 200
    detail = response.json()
    assert list(detail) == sorted(detail)
    assert detail["id"] == audit_id(row)
    assert (detail["traceId"], detail["spanId"]) == (row.trace_id, row.span_id)
    assert detail["startTime"] == "2025-03-10T09:00:00.000Z"
    assert detail["endTime"] == stamp(ns("2025-03-10T09:00:00") + row.duration_ns) == "2025-03-10T09:00:00.001Z"
    assert (detail["entityId"], detail["entityType"]) == ("1057", "document")
    assert (detail["featureType"], detail["featureId"]) == ("prompt", "summarise")
    assert detail["totalTokens"] == 120
    assert detail["metadata"] == [
        {"key": "deployment.environment", "value": "test"},
        {"key": "gen_ai.request.temperature", "value": "0.25"},
    ]


def test_detail_of_a_corrected_operation_is_its_live_state(audit):
    detail = requests.get(f"{audit.url}{AUDIT}/{audit_id(ROWS[4])}", timeout=10).json()
    assert detail["userId"] == "u-2"


@pytest.mark.parametrize("number", [6, 99])
def test_detail_of_a_cancelled_or_unknown_operation_is_404(audit, number):
    response = requests.get(f"{audit.url}{AUDIT}/{number:032x}{number:016x}", timeout=10)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize("bad", ["abc", "g" * 48, "a" * 47, "a" * 49, "0" * 32 + "-" * 16])
def test_malformed_id_is_400(audit, bad):
    response = requests.get(f"{audit.url}{AUDIT}/{bad}", timeout=10)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/problem+json"
    assert "'id'" in response.json()["detail"]


def test_an_exported_span_is_an_audit_entry_with_its_attributes(service):
    recorder = Recorder()
    start = ns("2025-03-11T08:00:00.123")
    span = recorder.tracer().start_span("chat gpt-4o", start_time=start, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 9, "gen_ai.request.max_tokens": 256,
    })
    span.end(end_time=start + 2_500_000_000)
    spans = recorder.take()
    export(http_exporter(f"{service.url}/v1/traces", "json"), spans)
    trace_id, span_id = ids(spans[0])
    page = listing(service, fromDate="2025-03-11T00:00:00Z")
    assert [item["id"] for item in page["items"]] == [trace_id + span_id]
    detail = requests.get(f"{service.url}{AUDIT}/{trace_id + span_id}", timeout=10).json()
    assert (detail["startTime"], detail["endTime"], detail["durationMs"]) == ("2025-03-11T08:00:00.123Z", "2025-03-11T08:00:02.623Z", 2500)
    assert {"key": "gen_ai.request.max_tokens", "value": "256"} in detail["metadata"]

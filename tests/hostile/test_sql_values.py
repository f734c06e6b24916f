"""SQL-looking values everywhere: stored and read back exactly as sent, never executed.

Each value goes into every span attribute that becomes a column (provider,
models, profile id and alias, user id and name, feature, entity, error
message, service name, scope, span name) and into an attribute key and
value that land in the attributes map; over OTLP protobuf and JSON. Then it
comes back through the API byte for byte (which proves binding: escaping
would show), works as a filter, and is refused or answered as data in every
query parameter and path segment. The tables are all still there afterwards.
"""

from __future__ import annotations

import random
import urllib.parse

import orjson
import pytest
import requests

from tests.hostile.payloads import JSON, PROTOBUF, START, Ids, proto_export, proto_span, to_json

API = "/umbraco/ai/management/api/v1"
HOSTILE = [
    "'); DROP TABLE operations; --",
    "' OR 1=1 --",
    "\\' OR 1=1 --",
    '" OR ""="',
    "{from:DateTime}",
    "{value:String}",
    "1; SELECT * FROM system.tables",
    "' UNION SELECT version(), 1, 2 --",
    "\\",
    "\\N",
    "nul\x00byte\x00",
    "tab\tnew\nline\rcarriage",
    "%s %d %(x)s {0} $1 ?",
    "`backtick` /* comment */ -- ",
    "ユーザー 🚀 ñ \u202eevil\u202c \u200b",
    "'" * 200,
    "Robert'); DROP TABLE usage_hourly;--" * 30,
]
# Span attributes that fill a column, and the audit-log detail property each comes back in.
COLUMNS = {
    "gen_ai.request.model": "modelId",
    "umbraco.ai.profile.id": "profileId",
    "umbraco.ai.profile.alias": "profileAlias",
    "umbraco.ai.user.id": "userId",
    "umbraco.ai.user.name": "userName",
    "umbraco.ai.feature.type": "featureType",
    "umbraco.ai.feature.id": "featureId",
    "umbraco.ai.entity.id": "entityId",
    "umbraco.ai.entity.type": "entityType",
}
TABLES = ("operations", "usage_hourly", "usage_daily", "incoming_spans")


def ascii_lower(text: str) -> str:
    """ClickHouse's lower(): ASCII letters only (the provider id is normalised with it)."""
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in text)


@pytest.fixture(scope="module")
def stored(hostile_services):
    """One failed call per hostile value and encoding, every column set to the value."""
    service = hostile_services()
    ids = Ids(random.Random(11))
    calls = []
    for n, value in enumerate(HOSTILE):
        for media in (PROTOBUF, JSON):
            trace, span = ids.trace(), ids.span()
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": value,
                "gen_ai.response.model": value + " response",
                "gen_ai.usage.input_tokens": n + 1,
                **{key: value for key in COLUMNS},
                value: value,  # a key and a value of the attributes map
            }
            request = proto_export(
                proto_span(attributes, trace=trace, span=span, name=value, start=START + n * 1000,
                           status=2, message=value),
                resource={"service.name": value}, scope=value,
            )
            body = request.SerializeToString() if media == PROTOBUF else orjson.dumps(to_json(request))
            response = requests.post(f"{service.url}/v1/traces", data=body, headers={"Content-Type": media}, timeout=15)
            assert response.status_code == 200, (value, response.content)
            assert response.content in (b"", b"{}"), "no span rejected"
            calls.append((value, trace, span))
    return service, calls


def detail(service, trace: str, span: str) -> dict:
    response = requests.get(f"{service.url}{API}/audit-logs/{trace}{span}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_column_reads_back_exactly_as_sent(stored):
    service, calls = stored
    for value, trace, span in calls:
        entry = detail(service, trace, span)
        for prop in COLUMNS.values():
            assert entry[prop] == value, (prop, value, entry[prop])
        assert entry["providerId"] == ascii_lower(value)
        assert entry["errorMessage"] == value
        assert entry["status"] == "Failed"
        metadata = {item["key"]: item["value"] for item in entry["metadata"]}
        assert metadata[value] == value, "attribute key and value kept in the attributes map"
        row = service.query(
            "SELECT service_name, scope_name, span_name, provider_raw, response_model FROM operations "
            "WHERE trace_id = {trace:String} AND span_id = {span:String}",
            {"trace": trace, "span": span},
        )
        assert row == [{"service_name": value, "scope_name": value, "span_name": value, "provider_raw": value,
                        "response_model": value + " response"}]


def test_filters_match_the_values_exactly(stored):
    service, calls = stored
    for value, trace, span in calls[::2]:  # one per value (each value was sent twice)
        expected = {f"{t}{s}" for v, t, s in calls if v == value}
        for parameter, sent in (("userId", value), ("profileId", value), ("entityId", value),
                                ("providerId", ascii_lower(value))):
            response = requests.get(f"{service.url}{API}/audit-logs", params={parameter: sent, "take": 1000}, timeout=10)
            assert response.status_code == 200, response.text
            assert {item["id"] for item in response.json()["items"]} == expected, (parameter, value)
        found = requests.get(f"{service.url}{API}/audit-logs", params={"searchText": value, "take": 1000}, timeout=10).json()
        assert expected <= {item["id"] for item in found["items"]}, value


def test_breakdowns_group_by_the_values_exactly(stored):
    service, calls = stored
    day = {"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"}
    values = {value for value, _, _ in calls}
    users = requests.get(f"{service.url}{API}/analytics/usage-by-user", params=day, timeout=10).json()
    assert {(item["dimension"], item["dimensionName"]) for item in users} == {(v, v) for v in values}
    assert all(item["requestCount"] == 2 for item in users)
    providers = requests.get(f"{service.url}{API}/analytics/usage-by-provider", params=day, timeout=10).json()
    assert {item["dimension"] for item in providers} == {ascii_lower(v) for v in values}
    models = requests.get(f"{service.url}{API}/analytics/usage-by-model", params=day, timeout=10).json()
    assert {item["dimension"] for item in models} == values
    profiles = requests.get(f"{service.url}{API}/analytics/usage-by-profile", params=day, timeout=10).json()
    assert {(item["dimension"], item["dimensionName"]) for item in profiles} == {(v, v) for v in values}


QUERY_ROUTES = ["analytics/usage-summary", "analytics/usage-time-series", "analytics/usage-by-provider",
                "analytics/usage-by-model", "analytics/usage-by-profile", "analytics/usage-by-user",
                "analytics/summary", "analytics/breakdown/user"]
AUDIT_PARAMETERS = ["status", "userId", "profileId", "providerId", "entityId", "fromDate", "toDate", "searchText",
                    "skip", "take"]


@pytest.mark.parametrize("value", HOSTILE)
def test_every_query_parameter_treats_the_value_as_data(stored, value):
    service, calls = stored
    day = {"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"}
    for route in QUERY_ROUTES:
        for parameter in ("from", "to", "granularity"):
            response = requests.get(f"{service.url}{API}/{route}", params={**day, parameter: value}, timeout=10)
            assert response.status_code == 400, (route, parameter, response.text)
            body = response.json()
            assert response.headers["Content-Type"] == "application/problem+json"
            assert parameter in body["errors"], body
    for parameter in AUDIT_PARAMETERS:
        response = requests.get(f"{service.url}{API}/audit-logs", params={parameter: value}, timeout=10)
        filters_text = parameter in ("userId", "profileId", "providerId", "entityId", "searchText")
        assert response.status_code == (200 if filters_text else 400), (parameter, response.text)
        if filters_text and parameter != "searchText":
            matching = {f"{t}{s}" for v, t, s in calls if (ascii_lower(v) if parameter == "providerId" else v) == value}
            assert {item["id"] for item in response.json()["items"]} == matching, parameter
    # As a path segment: not an id (400), or an unknown route (404); never a 5xx.
    for template in (f"{API}/audit-logs/{{}}", f"{API}/analytics/{{}}", f"{API}/analytics/breakdown/{{}}"):
        response = requests.get(f"{service.url}{template.format(urllib.parse.quote(value, safe=''))}", params=day, timeout=10)
        assert response.status_code in (400, 404), response.text
        assert response.headers["Content-Type"] == "application/problem+json"


def test_nothing_was_executed(stored):
    service, calls = stored
    for table in TABLES:
        assert service.query("EXISTS TABLE {name:Identifier}", {"name": table}) == [{"result": 1}], table
    assert service.query("SELECT sum(sign) AS n FROM operations") == [{"n": len(calls)}]
    summary = requests.get(f"{service.url}{API}/analytics/usage-summary",
                           params={"from": "0001-01-01", "to": "9999-12-31"}, timeout=10).json()
    assert summary["totalRequests"] == len(calls) and summary["failureCount"] == len(calls)

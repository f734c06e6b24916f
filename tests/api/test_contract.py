"""The HTTP contract of the API: errors, JSON format, keys, CORS and the OpenAPI document."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.api.rows import insert_rows, operation

BASE = "/umbraco/ai/management/api/v1"
ANALYTICS = f"{BASE}/analytics"
CANONICAL = ["usage-summary", "usage-time-series", "usage-by-provider", "usage-by-model", "usage-by-profile", "usage-by-user"]
ALIASES = ["summary", "timeseries", "breakdown/provider", "breakdown/model", "breakdown/profile", "breakdown/user"]
ALL_ROUTES = CANONICAL + ALIASES
DAY = {"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
API_KEY, INGEST_KEY = "analytics-key", "ingest-key"
ORIGIN = "https://backoffice.example"


@pytest.fixture(scope="module")
def stored(module_services):
    service = module_services(role="api")
    insert_rows(service.database, [
        operation("2025-03-10T09:15:00", 1),
        operation("2025-03-10T09:45:00", 2, succeeded=False, user_id="", user_name=""),
        operation("2025-03-10T14:00:00", 3, provider="", profile_id="", profile_alias=""),
    ])
    return service


@pytest.fixture(scope="module")
def open_service(module_services):
    """No keys, no CORS origins: the defaults."""
    return module_services(role="api")


def get(service, path: str, params: dict | None = None, **kwargs) -> requests.Response:
    return requests.get(f"{service.url}{path}", params=params, timeout=10, **kwargs)


def assert_problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


# --- Errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"to": DAY["to"]}, "from", "required"),
        ({"from": DAY["from"]}, "to", "required"),
        ({}, "from", "required"),
        ({"from": "yesterday", "to": DAY["to"]}, "from", "'yesterday'"),
        ({"from": DAY["from"], "to": "2025-13-01"}, "to", "'2025-13-01'"),
        ({"from": "", "to": DAY["to"]}, "from", "ISO 8601"),
        ({"from": "2025-03-10T25:00:00Z", "to": DAY["to"]}, "from", "ISO 8601"),
        ({"from": "2025-03-10T00:00:00+24:00", "to": DAY["to"]}, "from", "ISO 8601"),
    ],
)
def test_missing_or_unparseable_dates_are_400_naming_the_parameter(open_service, route, params, parameter, words):
    body = assert_problem(get(open_service, f"{ANALYTICS}/{route}", params), 400)
    assert f"'{parameter}'" in body["detail"] and words in body["detail"]
    assert parameter in body["errors"]


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize("to", [DAY["from"], "2025-03-09T23:59:59.999Z", "2025-03-10T01:00:00+02:00"])
def test_from_not_before_to_is_400(open_service, route, to):
    body = assert_problem(get(open_service, f"{ANALYTICS}/{route}", {"from": DAY["from"], "to": to}), 400)
    assert body["detail"] == "'from' must be before 'to'"


@pytest.mark.parametrize("route", ALL_ROUTES)
def test_unknown_granularity_is_400_naming_the_value_and_the_valid_ones(open_service, route):
    body = assert_problem(get(open_service, f"{ANALYTICS}/{route}", {**DAY, "granularity": "Fortnightly"}), 400)
    assert "'Fortnightly'" in body["detail"]
    for valid in ("Hourly", "Daily", "Weekly", "Monthly", "hour", "day", "week", "month"):
        assert valid in body["detail"]


@pytest.mark.parametrize("granularity", ["Hourly", "hourly", "HOUR", "Daily", "day", "Weekly", "WEEK", "Monthly", "month"])
def test_granularity_is_case_insensitive(open_service, granularity):
    assert get(open_service, f"{ANALYTICS}/usage-time-series", {**DAY, "granularity": granularity}).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/nope", f"{ANALYTICS}/usage-by-planet", f"{ANALYTICS}/breakdown/planet", f"{BASE}/analytics", "/docs/assets/missing.js"],
)
def test_unknown_routes_are_json_404(open_service, path):
    assert_problem(get(open_service, path, DAY), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_json_405(open_service, method):
    response = requests.request(method, f"{open_service.url}{ANALYTICS}/usage-summary", params=DAY, timeout=10)
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z", "1900-01-01", "2262-04-12T00:00:00Z", "2025-03-10T00:00:00.123456789123Z",
     "2025-02-30", "2025-03-10T00:00:00-23:59", "２０２５-03-10", "2025-03-10T00:00:00Z\x00", "' OR 1=1 --", "{from:String}"],
)
def test_odd_dates_never_give_a_500(stored, value):
    for params in ({"from": value, "to": "9999-12-31T23:59:59Z"}, {"from": "0001-01-01", "to": value}):
        for route in CANONICAL:
            response = get(stored, f"{ANALYTICS}/{route}", params)
            assert response.status_code in (200, 400), (route, params, response.text)
            assert response.headers["Content-Type"].startswith(("application/json", "application/problem+json"))


def test_the_whole_time_range_counts_everything(stored):
    summary = get(stored, f"{ANALYTICS}/usage-summary", {"from": "0001-01-01", "to": "9999-12-31T23:59:59.9999999Z"}).json()
    assert summary["totalRequests"] == 3


# --- Dates and the default granularity --------------------------------------------------


def test_naive_dates_are_utc_and_offsets_are_converted(stored):
    def total(start: str, end: str) -> int:
        return get(stored, f"{ANALYTICS}/usage-summary", {"from": start, "to": end}).json()["totalRequests"]

    assert total("2025-03-10T09:15:00", "2025-03-10T09:45:00") == 1, "naive = UTC; from inclusive, to exclusive"
    assert total("2025-03-10T10:15:00+01:00", "2025-03-10T10:45:00.0000001+01:00") == 2, "offset; 7 fraction digits (.NET)"
    assert total("2025-03-10T04:15:00-05:00", "2025-03-10T04:45:00-05:00") == 1
    # A '+' that was not URL-encoded arrives as a space.
    response = requests.get(f"{stored.url}{ANALYTICS}/usage-summary?from=2025-03-10T10:15:00+01:00&to=2025-03-10T15:00:00+01:00", timeout=10)
    assert response.json()["totalRequests"] == 2


@pytest.mark.parametrize(
    ("start", "end", "hourly"),
    [
        ("2025-03-04T00:00:00Z", "2025-03-11T00:00:00Z", True),  # exactly 7 days
        ("2025-03-04T00:00:00Z", "2025-03-11T00:00:00.001Z", False),
        ("2025-03-10T00:00:00Z", "2025-03-10T15:00:00Z", True),
    ],
)
def test_default_granularity_is_hourly_up_to_seven_days_else_daily(stored, start, end, hourly):
    series = get(stored, f"{ANALYTICS}/usage-time-series", {"from": start, "to": end}).json()
    stamps = [point["timestamp"] for point in series]
    if hourly:
        assert stamps == ["2025-03-10T09:00:00.000Z", "2025-03-10T14:00:00.000Z"]
    else:
        assert stamps == ["2025-03-10T00:00:00.000Z"]


# --- JSON format --------------------------------------------------------------------------


def pairs(text: str):
    return json.loads(text, object_pairs_hook=lambda items: items)


@pytest.mark.parametrize("route", ALL_ROUTES)
def test_json_is_camel_case_sorted_typed(stored, route):
    response = get(stored, f"{ANALYTICS}/{route}", DAY)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = pairs(response.text)
    objects = [body] if route.endswith("summary") else body
    assert objects, "the stored operations are in range"
    for item in objects:
        keys = [key for key, _ in item]
        assert keys == sorted(keys), f"keys in alphabetical order as sent: {keys}"
        assert all(re.fullmatch(r"[a-z][a-zA-Z]*", key) for key in keys)
        for key, value in item:
            if key == "timestamp":
                assert TIMESTAMP.match(value), value
            elif key in ("successRate", "percentage"):
                assert isinstance(value, float | int) and not isinstance(value, bool)
            elif key in ("dimension", "dimensionName"):
                assert value is None or isinstance(value, str)
            else:
                assert type(value) is int, f"{key} is an integer, not {value!r}"


def test_summary_values_and_empty_range(stored):
    summary = get(stored, f"{ANALYTICS}/usage-summary", DAY).json()
    assert summary == {
        "averageDurationMs": 1,  # 3 x 1.999999 ms = 5.999997 ms / 3, truncated
        "failureCount": 1,
        "inputTokens": 300,
        "outputTokens": 60,
        "successCount": 2,
        "successRate": 2 / 3,
        "totalRequests": 3,
        "totalTokens": 360,
    }
    empty = get(stored, f"{ANALYTICS}/usage-summary", {"from": "2020-01-01", "to": "2020-01-02"})
    assert pairs(empty.text) == [(key, 0) for key in sorted(summary)]
    for route in CANONICAL[1:]:
        assert get(stored, f"{ANALYTICS}/{route}", {"from": "2020-01-01", "to": "2020-01-02"}).text.strip() == "[]"


# --- Keys -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(module_services):
    return module_services(role="all", api_keys=(API_KEY, "second-analytics-key"), ingest_keys=(INGEST_KEY,))


@pytest.mark.parametrize("path", [f"{ANALYTICS}/{route}" for route in ALL_ROUTES] + [f"{BASE}/audit-logs", f"{BASE}/audit-logs/{'a' * 48}"])
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer", 401),
        ("Basic YWRtaW46YWRtaW4=", 401),
        ("Bearer wrong-key", 401),
        (f"Bearer {INGEST_KEY}", 403),
        (f"Bearer {API_KEY}", None),
        ("bearer second-analytics-key", None),
    ],
)
def test_bearer_keys_guard_every_api_route(keyed, path, authorization, status):
    headers = {"Authorization": authorization} if authorization else {}
    response = get(keyed, path, DAY, headers=headers)
    if status is None:
        assert response.status_code in (200, 404), response.text  # 404: the audit id does not exist
        return
    assert_problem(response, status)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"])
def test_health_and_docs_stay_open(keyed, path):
    assert get(keyed, path).status_code == 200


def test_without_keys_the_api_is_open(open_service):
    assert get(open_service, f"{ANALYTICS}/usage-summary", DAY).status_code == 200


# --- CORS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cors(module_services):
    return module_services(role="api", api_keys=(API_KEY,), cors_origins=(ORIGIN,))


def test_preflight_from_an_allowed_origin(cors):
    response = requests.options(f"{cors.url}{ANALYTICS}/usage-summary", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization",
    })
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "Origin" in response.headers["Vary"]


def test_cors_headers_on_answers_and_errors_for_an_allowed_origin_only(cors):
    allowed = get(cors, f"{ANALYTICS}/usage-summary", DAY, headers={"Origin": ORIGIN, "Authorization": f"Bearer {API_KEY}"})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = get(cors, f"{ANALYTICS}/usage-summary", DAY, headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN, "the browser may read the 401"
    other = get(cors, f"{ANALYTICS}/usage-summary", DAY, headers={"Origin": "https://evil.example", "Authorization": f"Bearer {API_KEY}"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = requests.options(f"{cors.url}{ANALYTICS}/usage-summary", timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
    })
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_no_origin_is_allowed_by_default(open_service):
    response = get(open_service, f"{ANALYTICS}/usage-summary", DAY, headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


# --- OpenAPI ------------------------------------------------------------------------------------


def test_openapi_describes_every_route_parameter_response_and_error(open_service):
    spec = get(open_service, "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    operations = {
        operation["operationId"]: (path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method == "get"
    }
    canonical_ids = ["getUsageSummary", "getUsageTimeSeries", "getUsageBreakdownByProvider", "getUsageBreakdownByModel",
                     "getUsageBreakdownByProfile", "getUsageBreakdownByUser"]
    for operation_id, route, alias in zip(canonical_ids, CANONICAL, ALIASES, strict=True):
        path, operation = operations[operation_id]
        assert path == f"{ANALYTICS}/{route}"
        assert operation["tags"] == ["Analytics"]
        names = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert names["from"]["required"] and names["to"]["required"] and not names["granularity"]["required"]
        assert "Hourly" in names["granularity"]["schema"]["enum"]
        alias_path, alias_operation = operations[f"{operation_id}Alias"]
        assert alias_path == f"{ANALYTICS}/{alias}" and alias_operation["x-alias-of"] == operation_id
        for status in ("200", "400", "401", "403"):
            assert status in operation["responses"]
    assert {"getAuditLogs", "getAuditLogById"} <= set(operations)
    problem = spec["components"]["responses"]["BAD_REQUEST"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert set(spec["components"]["schemas"]["Problem"]["properties"]) == {"status", "title", "detail", "errors"}
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A key from AI_USAGE_API_KEYS.",
    }
    # No keys configured: the document says a key may be sent and none is needed.
    assert spec["security"] == [{"bearerAuth": []}, {}]
    breakdown = spec["components"]["schemas"]["BreakdownItem"]["properties"]
    assert set(breakdown) == {"dimension", "dimensionName", "requestCount", "totalTokens", "percentage"}
    assert breakdown["dimensionName"]["nullable"] is True


def test_openapi_requires_a_key_when_keys_are_configured(keyed):
    assert get(keyed, "/openapi.json").json()["security"] == [{"bearerAuth": []}]


def test_swagger_ui_is_served_by_the_service(open_service):
    page = get(open_service, "/docs")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/docs/assets/") for source in sources), sources
    for source in sources:
        asset = get(open_service, source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source

"""Umbraco.AI traces whose context arrives in another export than the call, through every route over HTTP.

Microsoft.Extensions.AI records the model call (`chat {model}`, gen_ai.*
attributes); Umbraco.AI tags an ancestor, the ASP.NET Core request span, with
`umbraco.ai.*` (contract: otel-ingest.md, "Umbraco.AI context"). That span
ends last, so its export usually comes after the call's. The spans here are
built with the OpenTelemetry SDK from those attribute sets and sent by its
OTLP/HTTP exporter to a running service; the answers of the analytics and audit
routes are compared with tests/api/reference.py's, before and after the
ancestor arrives, at every storage level (tests/support/usage.py's periods).
"""

from __future__ import annotations

import pytest
import requests
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tests.api.reference import Sent, stamp
from tests.support.otel import ENCODINGS, Recorder, export, http_exporter, ids
from tests.support.usage import API, DAY, DAY_NS, HOUR_NS, assert_analytics, get, live_ids

MINUTE_NS = 60 * 10**9
MS = 1_000_000
P1, P2, P3 = "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "9b2f7a30-0000-4000-8000-0000000000c3"
U1, U2 = "8d9c7a51-0000-4000-8000-00000000beef", "11111111-2222-4333-8444-555555555555"
RESOURCE = {"service.name": "umbraco-site", "service.instance.id": "web-1", "telemetry.sdk.language": "dotnet", "deployment.environment": "test"}
MEAI_SCOPE = ("Experimental.Microsoft.Extensions.AI", "9.5.0")
UMBRACO_SCOPE = ("Umbraco.AI", "17.1.0")
ASPNET_SCOPE = ("Microsoft.AspNetCore", "")


def request_attributes(profile: tuple[str, str], user: tuple[str, str], feature: tuple[str, str], entity: tuple[str, str]) -> dict:
    """The ASP.NET Core request span as Umbraco.AI's middleware leaves it: HTTP attributes and its context tags."""
    return {
        "http.request.method": "POST",
        "http.route": "/umbraco/ai/management/api/v1/prompts/{id}/execute",
        "url.path": "/umbraco/ai/management/api/v1/prompts/summarise/execute",
        "url.scheme": "https",
        "server.address": "cms.example.com",
        "http.response.status_code": 200,
        "umbraco.ai.profile.id": profile[0],
        "umbraco.ai.profile.alias": profile[1],
        "umbraco.ai.user.id": user[0],
        "umbraco.ai.user.name": user[1],
        "umbraco.ai.feature.type": feature[0],
        "umbraco.ai.feature.id": feature[1],
        "umbraco.ai.entity.id": entity[0],
        "umbraco.ai.entity.type": entity[1],
        "umbraco.ai.audit.id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    }


def chat_attributes(provider: str, model: str, tokens: tuple[int, int], finish: str) -> dict:
    """Microsoft.Extensions.AI's OpenTelemetryChatClient, current GenAI conventions."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.output.type": "text",
        "gen_ai.response.id": "chatcmpl-AZ0tWz2vPp3Kb",
        "gen_ai.response.model": f"{model}-2024-08-06",
        "gen_ai.response.finish_reasons": [finish],
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "server.address": "api.openai.com",
        "server.port": 443,
    }


def chat_attributes_2024(provider: str, model: str, tokens: tuple[int, int]) -> dict:
    """Microsoft.Extensions.AI before mid 2025: `gen_ai.system` and `gen_ai.response.*_tokens`."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.finish_reasons": '["stop"]',
        "gen_ai.response.input_tokens": tokens[0],
        "gen_ai.response.output_tokens": tokens[1],
    }


class Spans:
    """Spans with chosen times, kept once they end until the test exports them (in the order it chooses)."""

    def __init__(self):
        self.recorder = Recorder(RESOURCE)
        self.finished: dict[str, object] = {}

    def start(self, name: str, scope: tuple[str, str], start: int, attributes: dict, parent=None, kind=SpanKind.INTERNAL):
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.recorder.tracer(*scope).start_span(name, context=context, kind=kind, start_time=start, attributes=attributes)

    def end(self, span, end: int):
        span.end(end_time=end)
        for readable in self.recorder.take():
            self.finished[audit_id(readable)] = readable
        return span

    def add(self, name: str, scope: tuple[str, str], start: int, end: int, attributes: dict, parent, kind=SpanKind.INTERNAL):
        return self.end(self.start(name, scope, start, attributes, parent, kind), end)

    def request(self, start: int, tags: dict):
        """The ASP.NET Core request span (a root: Umbraco's backoffice sends no traceparent)."""
        return self.start("POST /umbraco/ai/management/api/v1/prompts/{id}/execute", ASPNET_SCOPE, start, tags, kind=SpanKind.SERVER)

    def take(self, *spans) -> list:
        """What the exporter sends for these (ended) spans."""
        return [self.finished[audit_id(span)] for span in spans]


def audit_id(span) -> str:
    """Trace id + span id, as the audit log names an operation."""
    return "".join(ids(span))


def attributed(sent: Sent, profile: tuple[str, str], user: tuple[str, str]) -> Sent:
    return Sent(sent.start_ns, sent.duration_ns, sent.provider, sent.request_model, sent.response_model,
                profile[0], profile[1], user[0], user[1], sent.input_tokens, sent.output_tokens)


def audit_items(service, **filters) -> dict[str, dict]:
    response = requests.get(f"{service.url}{API}/audit-logs", params={"take": 1000, **filters}, timeout=10)
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


CONTEXT_FIELDS = ("profileId", "profileAlias", "userId", "userName", "featureType", "featureId", "entityId")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_context_on_a_request_span_exported_after_its_calls(make_service, encoding):
    service = make_service()
    exporter = http_exporter(f"{service.url}/v1/traces", encoding)
    spans = Spans()
    first = (P1, "content-writer"), (U1, "Ada Editor"), ("prompt", "summarise"), ("1057", "document")
    second = (P2, "translator"), (U2, "Bob"), ("agent", "translate"), ("2210", "media")

    # Trace 1, 10:20 (inside the partial range's head edge): request → orchestrate_tools
    # (Microsoft.Extensions.AI's function-invoking client) → chat, execute_tool, chat.
    t1 = DAY + 10 * HOUR_NS + 20 * MINUTE_NS
    request_1 = spans.request(t1, request_attributes(*first))
    orchestrate = spans.start("orchestrate_tools", MEAI_SCOPE, t1 + 10 * MS,
                              {"gen_ai.operation.name": "orchestrate_tools", "gen_ai.request.model": "gpt-4o"}, parent=request_1)
    chat_1 = spans.add("chat gpt-4o", MEAI_SCOPE, t1 + 20 * MS, t1 + 1_200 * MS,
                       chat_attributes("openai", "gpt-4o", (812, 24), "tool_calls"), orchestrate, SpanKind.CLIENT)
    tool = spans.add("execute_tool get_content", MEAI_SCOPE, t1 + 1_250 * MS, t1 + 1_300 * MS,
                     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_content"}, orchestrate)
    chat_2 = spans.add("chat gpt-4o", MEAI_SCOPE, t1 + 1_350 * MS, t1 + 3_800 * MS,
                       chat_attributes("openai", "gpt-4o", (1210, 356), "stop"), orchestrate, SpanKind.CLIENT)
    spans.end(orchestrate, t1 + 3_900 * MS)

    # Trace 2, 11:40 (a whole hour): request → an Umbraco.AI span → chat from Umbraco.AI's
    # own activity source, with the 2024 attribute names.
    t2 = DAY + 11 * HOUR_NS + 40 * MINUTE_NS
    request_2 = spans.request(t2, request_attributes(*second))
    middle = spans.add("Umbraco.AI.ChatService.GetResponse", UMBRACO_SCOPE, t2 + 5 * MS, t2 + 1_990 * MS, {}, request_2)
    chat_3 = spans.add("chat claude-sonnet-4", UMBRACO_SCOPE, t2 + 10 * MS, t2 + 1_980 * MS,
                       chat_attributes_2024("anthropic", "claude-sonnet-4", (500, 80)), middle, SpanKind.CLIENT)

    unattributed = {
        audit_id(chat_1): Sent(t1 + 20 * MS, 1_180 * MS, "openai", "gpt-4o", "", "", "", "", "", 812, 24),
        audit_id(chat_2): Sent(t1 + 1_350 * MS, 2_450 * MS, "openai", "gpt-4o", "", "", "", "", "", 1210, 356),
        audit_id(chat_3): Sent(t2 + 10 * MS, 1_970 * MS, "anthropic", "claude-sonnet-4", "", "", "", "", "", 500, 80),
    }
    dimensions = ("profile", "user", "model")

    # The calls first, in two exports; nothing says whose they are yet.
    export(exporter, spans.take(chat_1, chat_3))
    assert_analytics(service, {k: v for k, v in unattributed.items() if k != audit_id(chat_2)}, dimensions)
    export(exporter, spans.take(tool, chat_2, orchestrate, middle))
    assert_analytics(service, unattributed, dimensions)
    profiles = get(service, "analytics/usage-by-profile", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert [(p["dimension"], p["dimensionName"], p["requestCount"]) for p in profiles] == [("Unknown Profile", None, 3)]
    users = get(service, "analytics/usage-by-user", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert [(u["dimension"], u["dimensionName"], u["requestCount"]) for u in users] == [("Anonymous", None, 3)]
    summary_before = get(service, "analytics/usage-summary", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert all(item[field] is None for item in audit_items(service).values() for field in CONTEXT_FIELDS)

    # The request spans end and are exported: the calls move to their profile and user.
    ancestors = spans.take(spans.end(request_1, t1 + 4_000 * MS), spans.end(request_2, t2 + 2_000 * MS))
    export(exporter, ancestors)
    final = {
        audit_id(chat_1): attributed(unattributed[audit_id(chat_1)], first[0], first[1]),
        audit_id(chat_2): attributed(unattributed[audit_id(chat_2)], first[0], first[1]),
        audit_id(chat_3): attributed(unattributed[audit_id(chat_3)], second[0], second[1]),
    }
    assert_analytics(service, final, dimensions)
    assert get(service, "analytics/usage-summary", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)}) == summary_before, "moved, not added"
    profiles = get(service, "analytics/usage-by-profile", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert [(p["dimension"], p["dimensionName"], p["requestCount"], p["totalTokens"]) for p in profiles] == [
        (P1, "content-writer", 2, 812 + 24 + 1210 + 356), (P2, "translator", 1, 580),
    ]
    users = get(service, "analytics/usage-by-user", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert [(u["dimension"], u["dimensionName"], u["requestCount"]) for u in users] == [(U1, "Ada Editor", 2), (U2, "Bob", 1)]
    assert_audit(service, final, {audit_id(chat_1): first, audit_id(chat_2): first, audit_id(chat_3): second})

    # The exporter sends the request spans again (its answer was lost): nothing moves.
    export(exporter, ancestors)
    assert_analytics(service, final, dimensions)
    assert sorted(live_ids(service)) == sorted(final)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_context_on_a_request_span_exported_before_its_call(make_service, encoding):
    service = make_service()
    exporter = http_exporter(f"{service.url}/v1/traces", encoding)
    spans = Spans()
    context = (P3, "seo-helper"), (U1, "Ada Editor"), ("prompt", "meta-description"), ("1203", "document")
    # 13:10: in the partial range's tail edge, read from raw rows.
    t3 = DAY + 13 * HOUR_NS + 10 * MINUTE_NS
    request = spans.request(t3, request_attributes(*context))
    chat = spans.add("chat gpt-4o-mini", MEAI_SCOPE, t3 + 30 * MS, t3 + 850 * MS,
                     chat_attributes("openai", "gpt-4o-mini", (90, 10), "stop"), request, SpanKind.CLIENT)
    spans.end(request, t3 + 900 * MS)
    export(exporter, spans.take(request))  # e.g. the call's export was the one retried
    assert live_ids(service) == [], "a request span alone is no call"
    export(exporter, spans.take(chat))
    expected = {audit_id(chat): Sent(t3 + 30 * MS, 820 * MS, "openai", "gpt-4o-mini", "", P3, "seo-helper", U1, "Ada Editor", 90, 10)}
    assert_analytics(service, expected, ("profile", "user", "model"))
    assert_audit(service, expected, {audit_id(chat): context})
    rows = service.query("SELECT count() AS n FROM operations")
    assert rows == [{"n": 1}], "attributed as it was stored: no correction rows"


def assert_audit(service, calls: dict[str, Sent], contexts: dict[str, tuple]) -> None:
    """The audit list, its filters and the detail show each call with its request span's context."""
    items = audit_items(service)
    assert set(items) == set(calls)
    for key, sent in calls.items():
        profile, user, feature, entity = contexts[key]
        item = items[key]
        assert {field: item[field] for field in CONTEXT_FIELDS} == {
            "profileId": profile[0], "profileAlias": profile[1], "userId": user[0], "userName": user[1],
            "featureType": feature[0], "featureId": feature[1], "entityId": entity[0],
        }
        assert (item["modelId"], item["providerId"], item["inputTokens"], item["outputTokens"], item["startTime"]) == (
            sent.request_model, sent.provider, sent.input_tokens, sent.output_tokens, stamp(sent.start_ns),
        )
        detail = requests.get(f"{service.url}{API}/audit-logs/{key}", timeout=10).json()
        assert (detail["entityType"], detail["profileId"], detail["traceId"] + detail["spanId"]) == (entity[1], profile[0], key)
    for profile_id in {contexts[key][0][0] for key in calls}:
        wanted = {key for key in calls if contexts[key][0][0] == profile_id}
        assert set(audit_items(service, profileId=profile_id)) == wanted
    for user_id in {contexts[key][1][0] for key in calls}:
        wanted = {key for key in calls if contexts[key][1][0] == user_id}
        assert set(audit_items(service, userId=user_id)) == wanted

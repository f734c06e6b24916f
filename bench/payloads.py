"""Pre-built OTLP/HTTP bodies of realistic AI model-call spans, with fresh ids per request.

A client process builds a few templates once (protobuf and OTLP/JSON bytes of
512 chat spans each) and then, per request, overwrites only the trace, span and
parent ids in place: ids have a fixed width in both encodings, so a request
costs a copy and a few hundred slice assignments instead of a serialisation,
and the load generator stays out of the service's way on a small machine.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from clickhouse.synthetic import MODELS

SPANS_PER_REQUEST = 512
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# Chat models only: the payload is the common case, `chat` spans.
CHAT_MODELS = [m for m in MODELS if m[4] == "Chat"]
RESOURCE = {
    "service.name": "umbraco-site",
    "service.version": "17.1.0",
    "service.namespace": "web",
    "deployment.environment.name": "production",
    "host.name": "web-01",
    "os.type": "linux",
    "process.runtime.name": ".NET",
    "process.runtime.version": "9.0.10",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.language": "dotnet",
    "telemetry.sdk.version": "1.13.1",
}
SCOPE = ("Experimental.Microsoft.Extensions.AI", "9.10.0")
PROFILES = [(str(uuid.UUID(int=random.Random(i).getrandbits(128))), alias) for i, alias in enumerate(
    ("content-writer", "seo-description", "alt-text", "translator", "summariser", "support-assistant", "tagger", "newsletter")
)]
USERS = [(str(uuid.UUID(int=random.Random(100 + i).getrandbits(128))), name) for i, name in enumerate(
    ("Ada Editor", "Ben Berg", "Chloe Costa", "Daniel Dahl", "Emma Eriksen", "Farid Fischer", "Grace Garcia", "Hugo Holm")
)]


@dataclass(frozen=True)
class SpanSpec:
    """One chat span, independent of the encoding."""

    trace: int  # index of its trace in the template
    name: str
    start_ns: int
    end_ns: int
    error: str  # status message of a failed call, else ""
    attributes: dict[str, object]


def chat_spans(rng: random.Random, now_ns: int, count: int = SPANS_PER_REQUEST) -> tuple[list[SpanSpec], int]:
    """`count` chat spans in traces of one to four calls; returns the spans and the number of traces."""
    spans: list[SpanSpec] = []
    trace = -1
    left_in_trace = 0
    for i in range(count):
        if left_in_trace == 0:
            trace += 1
            left_in_trace = rng.choice((1, 1, 2, 3, 4))
        left_in_trace -= 1
        provider, provider_raw, model, response_model, _, server, _ = CHAT_MODELS[min(len(CHAT_MODELS) - 1, int(rng.paretovariate(1.2)) - 1)]
        input_tokens = int(rng.lognormvariate(6.5, 1.1)) + 1
        output_tokens = int(rng.lognormvariate(5.2, 0.8)) + 1
        start = now_ns - rng.randrange(1, 30_000_000_000)
        failed = rng.random() < 0.02
        attributes: dict[str, object] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_raw,
            "gen_ai.request.model": model,
            "gen_ai.response.model": response_model,
            "server.address": server,
            "server.port": 443,
            "gen_ai.request.temperature": round(rng.random(), 1),
            "gen_ai.request.top_p": 1.0,
            "gen_ai.request.max_tokens": 1024 * rng.randint(1, 4),
            "gen_ai.output.type": "text",
            "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(96):024x}",
        }
        if failed:
            attributes["error.type"] = "429"
        else:
            attributes["gen_ai.usage.input_tokens"] = input_tokens
            attributes["gen_ai.usage.output_tokens"] = output_tokens
            attributes["gen_ai.response.finish_reasons"] = ["stop"] if rng.random() < 0.9 else ["length"]
            if rng.random() < 0.3:
                attributes["gen_ai.usage.cache_read.input_tokens"] = int(input_tokens * rng.random())
        if rng.random() < 0.4:
            attributes["gen_ai.conversation.id"] = f"conv_{rng.getrandbits(64):016x}"
        if rng.random() < 0.35:  # Umbraco.AI context on the span itself (elsewhere it arrives on an ancestor)
            profile_id, alias = rng.choice(PROFILES)
            user_id, user_name = rng.choice(USERS)
            attributes |= {
                "umbraco.ai.profile.id": profile_id,
                "umbraco.ai.profile.alias": alias,
                "umbraco.ai.user.id": user_id,
                "umbraco.ai.user.name": user_name,
                "umbraco.ai.feature.type": "prompt",
                "umbraco.ai.feature.id": rng.choice(("summarise", "translate", "alt-text")),
                "umbraco.ai.entity.id": str(rng.randrange(1000, 20000)),
            }
        duration = int(1e6 * (300 * rng.lognormvariate(0, 0.4) + output_tokens * 12))
        spans.append(SpanSpec(trace, f"chat {model}", start, start + duration, "429 Too Many Requests" if failed else "", attributes))
    return spans, trace + 1


@dataclass(frozen=True)
class Template:
    """An encoded body cut at its ids: body = segments[0] + id + segments[1] + id + ...

    `slots[i]` says which id goes after `segments[i]`, as an index into the
    request's id list: span ids, then parent ids, then trace ids.
    """

    media: str
    segments: tuple[bytes, ...]
    slots: tuple[int, ...]
    spans: int
    traces: int
    size: int  # bytes


class IdSource:
    """Fresh ids for each request of one client, unique across the clients of a run by construction.

    Span and parent ids: run tag (2 bytes; the parent tag is its complement),
    client (1), request counter (3), index in the request (2). Trace ids: the
    same fields with a marker, padded to 16 bytes.
    """

    def __init__(self, run_tag: int, client: int, spans: int = SPANS_PER_REQUEST):
        self.run_tag = (run_tag & 0xFFFF) or 1
        self.client = client & 0xFF
        self.counter = 0
        self._suffix = [i.to_bytes(2, "big") for i in range(spans)]

    def next_ids(self, spans: int, traces: int, hexadecimal: bool) -> list[bytes]:
        self.counter = (self.counter + 1) & 0xFFFFFF
        counter = self.counter.to_bytes(3, "big")
        span_prefix = self.run_tag.to_bytes(2, "big") + bytes((self.client,)) + counter
        parent_prefix = (self.run_tag ^ 0xFFFF).to_bytes(2, "big") + bytes((self.client,)) + counter
        trace_prefix = span_prefix + b"\xb1\xe5"
        suffix = self._suffix
        ids = [span_prefix + suffix[i] for i in range(spans)]
        ids += [parent_prefix + suffix[i] for i in range(traces)]
        ids += [trace_prefix + suffix[i] + b"\x00\x00\x00\x00\x00\x01" for i in range(traces)]
        return [i.hex().encode() for i in ids] if hexadecimal else ids


def fresh_body(template: Template, ids: IdSource) -> bytes:
    """The template with new ids: same spans, ids never sent before in this run."""
    values = ids.next_ids(template.spans, template.traces, template.media == JSON)
    parts: list[bytes] = [b""] * (2 * len(template.slots) + 1)
    parts[0::2] = template.segments
    parts[1::2] = [values[i] for i in template.slots]
    return b"".join(parts)


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def _json_value(value: object) -> dict[str, object]:
    # OTLP/JSON: int64 as decimal strings, arrays as {"arrayValue": {"values": [...]}}.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_json_value(v) for v in value]}}
    return {"stringValue": str(value)}


def build_templates(seed: int, count: int, spans_per_request: int = SPANS_PER_REQUEST) -> dict[str, list[Template]]:
    """`count` templates per encoding, with the same spans in both encodings."""
    templates: dict[str, list[Template]] = {PROTOBUF: [], JSON: []}
    now_ns = time.time_ns()
    for t in range(count):
        rng = random.Random(seed * 1000 + t)
        spans, traces = chat_spans(rng, now_ns, spans_per_request)
        # Random placeholder ids, located in the encoded bytes afterwards.
        span_ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in spans]
        parent_ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(traces)]
        trace_ids = [rng.getrandbits(128).to_bytes(16, "big") for _ in range(traces)]
        protobuf = _encode_protobuf(spans, span_ids, parent_ids, trace_ids)
        document = _encode_json(spans, span_ids, parent_ids, trace_ids)
        templates[PROTOBUF].append(_locate(protobuf, PROTOBUF, span_ids, parent_ids, trace_ids, spans, binary=True))
        templates[JSON].append(_locate(document, JSON, span_ids, parent_ids, trace_ids, spans, binary=False))
    return templates


def _encode_protobuf(spans: list[SpanSpec], span_ids: list[bytes], parent_ids: list[bytes], trace_ids: list[bytes]) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in RESOURCE.items())
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = SCOPE
    for spec, span_id in zip(spans, span_ids, strict=True):
        span = scope_spans.spans.add()
        span.trace_id = trace_ids[spec.trace]
        span.span_id = span_id
        span.parent_span_id = parent_ids[spec.trace]
        span.name = spec.name
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = spec.start_ns
        span.end_time_unix_nano = spec.end_ns
        span.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in spec.attributes.items())
        if spec.error:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = spec.error
    return request.SerializeToString()


def _encode_json(spans: list[SpanSpec], span_ids: list[bytes], parent_ids: list[bytes], trace_ids: list[bytes]) -> bytes:
    def span_document(spec: SpanSpec, span_id: bytes) -> dict[str, object]:
        document: dict[str, object] = {
            "traceId": trace_ids[spec.trace].hex(),
            "spanId": span_id.hex(),
            "parentSpanId": parent_ids[spec.trace].hex(),
            "name": spec.name,
            "kind": 3,
            "startTimeUnixNano": str(spec.start_ns),
            "endTimeUnixNano": str(spec.end_ns),
            "attributes": [{"key": k, "value": _json_value(v)} for k, v in spec.attributes.items()],
            "status": {"code": 2, "message": spec.error} if spec.error else {},
        }
        return document

    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": k, "value": _json_value(v)} for k, v in RESOURCE.items()]},
                "scopeSpans": [
                    {
                        "scope": {"name": SCOPE[0], "version": SCOPE[1]},
                        "spans": [span_document(s, i) for s, i in zip(spans, span_ids, strict=True)],
                    }
                ],
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _locate(
    body: bytes,
    media: str,
    span_ids: list[bytes],
    parent_ids: list[bytes],
    trace_ids: list[bytes],
    spans: list[SpanSpec],
    *,
    binary: bool,
) -> Template:
    """Cut the body at every placeholder id, checking each appears as often as it must."""
    per_trace = [0] * len(trace_ids)
    for spec in spans:
        per_trace[spec.trace] += 1
    found: list[tuple[int, int, int]] = []  # (offset, length, slot)
    slot = 0
    for ids, expected in ((span_ids, [1] * len(span_ids)), (parent_ids, per_trace), (trace_ids, per_trace)):
        for index, raw in enumerate(ids):
            needle = raw if binary else raw.hex().encode()
            offsets = []
            at = body.find(needle)
            while at >= 0:
                offsets.append(at)
                at = body.find(needle, at + 1)
            if len(offsets) != expected[index]:
                raise RuntimeError(f"placeholder id {slot} found {len(offsets)} times, expected {expected[index]}")
            found.extend((offset, len(needle), slot) for offset in offsets)
            slot += 1
    found.sort()
    segments, slots, previous = [], [], 0
    for offset, length, index in found:
        segments.append(body[previous:offset])
        slots.append(index)
        previous = offset + length
    segments.append(body[previous:])
    return Template(media, tuple(segments), tuple(slots), len(spans), len(trace_ids), len(body))

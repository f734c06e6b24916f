"""Sending hostile payloads over OTLP/HTTP and OTLP/gRPC, judging each answer, and accounting for every stored row."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import grpc
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.hostile.payloads import PROTOBUF, Payload
from tests.support.service import InProcessService

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# No answer may take longer: a hang fails the test instead of stalling it.
TIMEOUT = 15
# gRPC codes a hostile request may get: refused as invalid or as too large. Never
# UNKNOWN or INTERNAL (a crash), nor UNAVAILABLE (nothing here overloads the service).
GRPC_REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass
class Answer:
    status: int  # HTTP status; for gRPC 200 for OK, 400 for INVALID_ARGUMENT, 413 for RESOURCE_EXHAUSTED
    rejected: int = 0
    message: str = ""


def post(session: requests.Session, service: InProcessService, payload: Payload) -> Answer:
    """POST a payload to /v1/traces; check the answer has the OTLP shape in the request's media type."""
    headers = {"Content-Type": payload.media}
    if payload.encoding:
        headers["Content-Encoding"] = payload.encoding
    response = session.post(f"{service.url}/v1/traces", data=payload.body, headers=headers, timeout=TIMEOUT)
    where = f"{payload.label}: {response.status_code} {response.content[:300]!r}"
    assert response.status_code < 500, where
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, where
    assert response.headers.get("Content-Type") == payload.media, where
    if response.status_code >= 400:
        if payload.media == PROTOBUF:
            status = status_pb2.Status.FromString(response.content)
            code, message = status.code, status.message
        else:
            body = response.json()
            assert set(body) == {"code", "message"}, where
            code, message = body["code"], body["message"]
        # INVALID_ARGUMENT for every permanent refusal (400, 413, 415).
        assert code == 3 and message, where
        return Answer(response.status_code, message=message)
    if payload.media == PROTOBUF:
        partial = ExportTraceServiceResponse.FromString(response.content).partial_success
        return Answer(response.status_code, partial.rejected_spans, partial.error_message)
    body = response.json()
    assert isinstance(body, dict) and set(body) <= {"partialSuccess"}, where
    partial = body.get("partialSuccess", {})
    return Answer(response.status_code, int(partial.get("rejectedSpans", 0)), partial.get("errorMessage", ""))


def export_grpc(channel: grpc.Channel, payload: Payload) -> Answer:
    """Call TraceService/Export with the payload's bytes as the request message."""
    export = channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString)
    try:
        response = export(payload.body, timeout=TIMEOUT)
    except grpc.RpcError as error:
        where = f"{payload.label}: {error.code()} {error.details()!r}"
        assert error.code() in GRPC_REFUSALS, where
        assert error.details(), where
        return Answer(413 if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else 400, message=error.details())
    return Answer(200, response.partial_success.rejected_spans, response.partial_success.error_message)


def occurs(body: bytes, trace: str, span: str) -> bool:
    """Whether a body carries both ids, in any encoding OTLP allows (bytes, hex, base64)."""
    lowered = body.lower()

    def one(hex_id: str) -> bool:
        raw = bytes.fromhex(hex_id)
        return raw in body or hex_id.encode() in lowered or base64.b64encode(raw) in body

    return one(trace) and one(span)


@dataclass
class Ledger:
    """Every row of `operations` must come from a request answered 2xx, and be counted once.

    Bodies answered 2xx since the last check form the window; a new row must
    carry ids found in one of them. Ids are unique per payload, so a row that
    came from a refused request has nowhere to hide.
    """

    service: InProcessService
    known: dict[tuple[str, str], str] = field(default_factory=dict)
    window: list[Payload] = field(default_factory=list)
    refusals: list[tuple[Payload, Answer]] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0

    def record(self, payload: Payload, answer: Answer) -> None:
        if answer.status < 300:
            self.accepted += 1
            self.window.append(payload)
        else:
            self.refused += 1
            self.refusals.append((payload, answer))

    def rows(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(net sign, row count) per stored key."""
        found = self.service.query("SELECT trace_id, span_id, sum(sign) AS net, count() AS n FROM operations GROUP BY trace_id, span_id")
        return {(row["trace_id"], row["span_id"]): (row["net"], row["n"]) for row in found}

    def check(self) -> set[tuple[str, str]]:
        """Attribute the rows stored since the last check; returns their keys."""
        rows = self.rows()
        for key, (net, _) in rows.items():
            assert net == 1, f"{key} counted {net} times ({self.known.get(key, 'new')})"
        new = {key for key in rows if key not in self.known}
        for key in new:
            sources = [payload.label for payload in self.window if occurs(payload.body, *key)]
            culprits = [(p.label, a.status, a.message[:200]) for p, a in self.refusals if occurs(p.body, *key)]
            assert sources, f"row {key} is from no request answered 2xx since the last check, but from {culprits}"
            self.known[key] = sources[0]
        missing = set(self.known) - set(rows)
        assert not missing, f"rows disappeared: {sorted(missing)[:5]}"
        self.window.clear()
        self.refusals.clear()
        return new

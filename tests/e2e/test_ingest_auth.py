"""Ingest keys on OTLP/HTTP and OTLP/gRPC: none, unknown, the analytics kind, the ingest kind."""

from __future__ import annotations

import grpc
import pytest
import requests

from tests.e2e.test_otlp_protocol import PROTO, chat_request
from tests.support.grpc_client import grpc_exporter, trace_stub
from tests.support.otel import Recorder, export, http_exporter
from tests.support.service import free_port

INGEST_KEY = "ingest-secret-1"
OTHER_INGEST_KEY = "ingest-secret-2"  # rotation: two keys active at once
ANALYTICS_KEY = "analytics-secret"


@pytest.fixture
def keyed(make_service):
    return make_service(ingest_keys=(INGEST_KEY, OTHER_INGEST_KEY), api_keys=(ANALYTICS_KEY,), grpc_port=free_port())


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer nope", 401),
        ("Basic aW5nZXN0OnNlY3JldA==", 401),
        (f"Bearer {ANALYTICS_KEY}", 403),
        (f"Bearer {INGEST_KEY}", 200),
        (f"bearer {OTHER_INGEST_KEY}", 200),
    ],
)
def test_http_ingest_keys(keyed, authorization, status):
    headers = dict(PROTO)
    if authorization:
        headers["Authorization"] = authorization
    response = requests.post(f"{keyed.url}/v1/traces", data=chat_request().SerializeToString(), headers=headers, timeout=10)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    stored = keyed.query("SELECT sum(sign) AS n FROM operations")[0]["n"]
    assert stored == (1 if status == 200 else 0), "a refused export stores nothing"


def test_sdk_http_exporter_with_otel_exporter_otlp_headers(keyed):
    recorder = Recorder()
    recorder.tracer().start_span("chat", attributes={"gen_ai.operation.name": "chat"}).end()
    export(http_exporter(f"{keyed.url}/v1/traces", "json", headers={"Authorization": f"Bearer {INGEST_KEY}"}), recorder.take())
    assert keyed.query("SELECT sum(sign) AS n FROM operations")[0]["n"] == 1


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {ANALYTICS_KEY}"),), grpc.StatusCode.PERMISSION_DENIED),
        ((("authorization", f"Bearer {INGEST_KEY}"),), grpc.StatusCode.OK),
    ],
)
def test_grpc_ingest_keys(keyed, metadata, code):
    channel, stub = trace_stub(keyed.runtime.grpc_port)
    with channel:
        try:
            stub.Export(chat_request(), metadata=metadata, timeout=10)
            got = grpc.StatusCode.OK
        except grpc.RpcError as error:
            got = error.code()
    assert got == code


def test_sdk_grpc_exporter_with_key(keyed):
    recorder = Recorder()
    recorder.tracer().start_span("chat", attributes={"gen_ai.operation.name": "chat"}).end()
    export(grpc_exporter(keyed.runtime.grpc_port, headers={"authorization": f"Bearer {OTHER_INGEST_KEY}"}), recorder.take())
    assert keyed.query("SELECT sum(sign) AS n FROM operations")[0]["n"] == 1

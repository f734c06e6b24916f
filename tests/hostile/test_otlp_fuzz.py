"""Thousands of malformed and fuzzed OTLP exports, over OTLP/HTTP (protobuf and JSON) and OTLP/gRPC.

For every payload: the answer is 2xx (possibly a partial success) or 4xx with
a google.rpc.Status body in the request's media type (gRPC: OK,
INVALID_ARGUMENT or RESOURCE_EXHAUSTED), never a 5xx, never a hang. Valid
exports with known ids are sent between the hostile ones. Every row stored
is traced back to a request answered 2xx (nothing is stored from a refused
request), no operation is counted twice, and at the end every valid export
is there. Edge cases with a predicted outcome are checked exactly: status,
spans rejected, spans stored.

Generation is deterministic (fixed seeds), so a failure names a payload that
the next run sends again.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests

from tests.hostile.otlp import Ledger, export_grpc, post
from tests.hostile.payloads import (
    JSON,
    PROTOBUF,
    Ids,
    Payload,
    json_edge_cases,
    json_mutants,
    marker,
    protobuf_edge_cases,
    protobuf_mutants,
)
from tests.support.service import free_port

BODY_LIMIT = 4 * 1024 * 1024
PROTOBUF_MUTANTS = 1200
JSON_MUTANTS = 900
GRPC_MUTANTS = 300
MARKER_EVERY = 25
CHECK_EVERY = 100
CONCURRENCY = 4


@pytest.fixture
def target(hostile_services):
    """A fresh database per test: the ledger accounts for every row in it."""
    return hostile_services(grpc_port=free_port(), max_body_bytes=BODY_LIMIT)


class Campaign:
    """Sends payloads with valid markers in between, checking each answer and the ledger as it goes.

    Mutants go CONCURRENCY at a time (so the writer groups several exports,
    hostile and valid, in one insert, and must still refuse only the bad
    one), in chunks followed by a ledger check; edge cases with a predicted
    outcome go one at a time, with a check before and after.
    """

    def __init__(self, service, send, ids: Ids, marker_medias: tuple[str, ...]):
        self.service = service
        self.send = send
        self.ids = ids
        self.marker_medias = marker_medias
        self.ledger = Ledger(service)
        self.markers: set[tuple[str, str]] = set()
        self.statuses: dict[int, int] = {}
        self.pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="hostile")

    def close(self) -> None:
        self.pool.shutdown()

    def mutants(self, payloads) -> None:
        chunk: list[Payload] = []
        for payload in payloads:
            chunk.append(payload)
            if len(chunk) % MARKER_EVERY == 0:
                chunk.append(self.new_marker())
            if len(chunk) >= CHECK_EVERY:
                self.concurrently(chunk)
                chunk = []
        self.concurrently(chunk)

    def concurrently(self, chunk: list[Payload]) -> None:
        for payload, answer in zip(chunk, self.pool.map(self.send, chunk), strict=True):
            self.count(payload, answer)
            if payload.expect is not None:  # a marker
                assert (answer.status, answer.rejected) == (200, 0), (payload.label, answer)
        self.ledger.check()
        assert self.markers <= set(self.ledger.known), "every valid export sent so far is stored"

    def exact(self, payloads) -> None:
        for payload in payloads:
            self.ledger.check()
            answer = self.send(payload)
            self.count(payload, answer)
            expect = payload.expect
            stored = self.ledger.check()
            outcome = (answer.status, answer.rejected, stored)
            assert outcome == (expect.status, expect.rejected, set(expect.stored)), (payload.label, answer.message, outcome)
            if expect.columns:
                (trace, span), = expect.stored
                row = self.service.query(
                    f"SELECT {', '.join(expect.columns)} FROM operations WHERE trace_id = {{t:String}} AND span_id = {{s:String}}",
                    {"t": trace, "s": span},
                )
                assert row == [expect.columns], (payload.label, row)

    def count(self, payload: Payload, answer) -> None:
        self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
        self.ledger.record(payload, answer)

    def new_marker(self) -> Payload:
        number = len(self.markers)
        payload = marker(self.ids, number, self.marker_medias[number % len(self.marker_medias)])
        self.markers |= payload.expect.stored
        return payload

    def finish(self) -> None:
        self.close()
        self.ledger.check()
        rows = self.ledger.rows()
        assert self.markers <= set(rows), "every valid export is stored"
        assert all(net == 1 for net, _ in rows.values())
        ready = requests.get(f"{self.service.url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text


def test_fuzzed_otlp_http_exports(target):
    ids = Ids(random.Random(6))
    sessions = threading.local()

    def send(payload: Payload):
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        return post(sessions.session, target, payload)

    campaign = Campaign(target, send, ids, (PROTOBUF, JSON))
    campaign.mutants(protobuf_mutants(random.Random(61), ids, PROTOBUF_MUTANTS))
    campaign.exact(protobuf_edge_cases(ids, BODY_LIMIT))
    campaign.mutants(json_mutants(random.Random(62), ids, JSON_MUTANTS))
    campaign.exact(json_edge_cases(ids))
    campaign.finish()
    # The fuzzing reached both sides: many refused, many stored.
    refused = sum(n for status, n in campaign.statuses.items() if status >= 400)
    assert refused > 500 and campaign.ledger.accepted > 500, campaign.statuses
    assert len(campaign.ledger.known) > 300


def test_fuzzed_otlp_grpc_exports(target):
    ids = Ids(random.Random(7))
    with grpc.insecure_channel(f"127.0.0.1:{target.runtime.grpc_port}") as channel:
        campaign = Campaign(target, lambda payload: export_grpc(channel, payload), ids, (PROTOBUF,))
        campaign.mutants(protobuf_mutants(random.Random(71), ids, GRPC_MUTANTS))
        campaign.exact(protobuf_edge_cases(ids, BODY_LIMIT))
        campaign.finish()
    assert campaign.statuses.get(400, 0) > 100 and campaign.ledger.accepted > 100, campaign.statuses

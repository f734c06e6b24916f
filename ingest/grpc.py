"""OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

A thin transport over the same core `export()` as OTLP/HTTP. The method is
registered with no request deserializer, so it receives the request's raw
bytes and decodes them with the same codec as OTLP/HTTP (which keeps each
span's bytes for ClickHouse). grpc enforces the size limit (its receive
limit, raised from 4 MiB to the body limit, applies after decompression, so a
gzip bomb is refused by grpc core with RESOURCE_EXHAUSTED) and handles
`grpc-encoding: gzip`.
Retryable errors carry a RetryInfo both as `google.rpc.retryinfo-bin`
(what the Python exporter reads) and inside `grpc-status-details-bin`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ingest.codec import PROTOBUF
from ingest.errors import IngestError, RetryableError
from ingest.observe import GRPC, ExportReport
from ingest.pipeline import IngestService

log = logging.getLogger(__name__)

Authorizer = Callable[[str | None], None]


SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceServicer:
    def __init__(self, service: IngestService, authorize: Authorizer | None = None):
        self.service = service
        self.authorize = authorize

    def handler(self) -> grpc.GenericRpcHandler:
        export = grpc.unary_unary_rpc_method_handler(
            self.export,
            request_deserializer=None,  # raw bytes in
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {"Export": export})

    def export(self, request: bytes, context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        started = time.perf_counter()
        observer = self.service.observer
        spans = 0
        try:
            if self.authorize is not None:
                self.authorize(_metadata(context, "authorization"))
            decoded = self.service.receive(request, PROTOBUF)
            spans = decoded.span_count
            result = self.service.submit(decoded)
        except IngestError as error:
            code = _STATUS_CODES.get(error.grpc_code, grpc.StatusCode.INTERNAL)
            observer.export_finished(ExportReport.failed(GRPC, code.name, started, spans, error))
            _abort(context, error)
        except Exception as error:
            # grpc answers UNKNOWN for an exception it did not expect; count it first.
            observer.export_finished(ExportReport.failed(GRPC, grpc.StatusCode.UNKNOWN.name, started, spans, error))
            raise
        observer.export_finished(
            ExportReport.answered(GRPC, grpc.StatusCode.OK.name, started, spans, result.accepted_operations, result.rejected_spans)
        )
        response = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected_spans:
            response.partial_success.rejected_spans = result.rejected_spans
            response.partial_success.error_message = result.error_message
        return response


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value
    return None


def _abort(context: grpc.ServicerContext, error: IngestError) -> None:
    code = _STATUS_CODES.get(error.grpc_code, grpc.StatusCode.INTERNAL)
    if isinstance(error, RetryableError):
        retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=error.retry_after_seconds))
        status = status_pb2.Status(code=error.grpc_code, message=error.message)
        status.details.add().Pack(retry)
        context.set_trailing_metadata(
            (("google.rpc.retryinfo-bin", retry.SerializeToString()), ("grpc-status-details-bin", status.SerializeToString()))
        )
    context.abort(code, error.message)


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class GrpcReceiver:
    """The gRPC server, started and stopped with the service."""

    def __init__(self, service: IngestService, host: str, port: int, max_message_bytes: int, threads: int = 16,
                 authorize: Authorizer | None = None, interceptors: Sequence[grpc.ServerInterceptor] = ()):
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # Several gunicorn workers of one ingest service share the port
            # (SO_REUSEPORT, grpc's default on Linux, stated here on purpose).
            ("grpc.so_reuseport", 1),
        ]
        # Interceptors (request ids and access logs, from app/) wrap every call.
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-grpc"),
            options=options,
            interceptors=list(interceptors),
        )
        self.server.add_generic_rpc_handlers((TraceServicer(service, authorize).handler(),))
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot bind OTLP/gRPC to {host}:{port}")

    def start(self) -> None:
        self.server.start()
        log.info("OTLP/gRPC listening on port %d", self.port)

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let running ones finish for up to `grace` seconds."""
        self.server.stop(grace).wait(grace + 1)

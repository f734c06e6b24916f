"""OTLP/HTTP receiver: `POST /v1/traces`, protobuf or JSON, gzip or deflate.

A thin transport: read the body within the size limit, inflate it within the
same limit (a small gzip bomb is a 413, not an out-of-memory), decode it, call
the core `export()`, and answer in the request's content type. Every error
leaves as a `google.rpc.Status` body with the status code that
`ingest.errors` assigns.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable

from flask import Blueprint, Response, request

from ingest import codec
from ingest.errors import IngestError, MalformedRequest, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType
from ingest.observe import HTTP, ExportReport
from ingest.pipeline import IngestService

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_READ_CHUNK = 1024 * 1024

Authorizer = Callable[[str | None], None]


def create_blueprint(service: IngestService, max_body_bytes: int, authorize: Authorizer | None = None) -> Blueprint:
    blueprint = Blueprint("otlp", __name__)
    observer = service.observer

    @blueprint.route(TRACES_PATH, methods=_ALL_METHODS, strict_slashes=False)
    def export_traces() -> Response:
        started = time.perf_counter()
        reply_media = _reply_media(request.headers.get("Content-Type"))
        spans = 0
        try:
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed on {TRACES_PATH}; use POST")
            if authorize is not None:
                authorize(request.headers.get("Authorization"))
            media = codec.media_type(request.headers.get("Content-Type"))
            body = read_body(request.stream, request.content_length, request.headers.get("Content-Encoding"), max_body_bytes)
            decoded = service.receive(body, media)
            spans = decoded.span_count
            result = service.submit(decoded)
        except IngestError as error:
            observer.export_finished(ExportReport.failed(HTTP, str(error.http_status), started, spans, error))
            return error_response(error, reply_media)
        except Exception as error:
            # Flask answers it (a werkzeug error keeps its status, anything else is 500); count it first.
            status = getattr(error, "code", None)
            observer.export_finished(ExportReport.failed(HTTP, str(status if isinstance(status, int) else 500), started, spans, error))
            raise
        observer.export_finished(
            ExportReport.answered(HTTP, "200", started, spans, result.accepted_operations, result.rejected_spans)
        )
        return Response(
            codec.encode_response(media, result.rejected_spans, result.error_message), status=200, content_type=media
        )

    return blueprint


def error_response(error: IngestError, media: str) -> Response:
    response = Response(codec.encode_status(media, error.grpc_code, error.message), status=error.http_status, content_type=media)
    if error.retryable:
        response.headers["Retry-After"] = str(getattr(error, "retry_after_seconds", 2))
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = "POST"
    if error.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="otlp"'
    return response


def _reply_media(content_type: str | None) -> str:
    try:
        return codec.media_type(content_type)
    except UnsupportedMediaType:
        return codec.JSON


def read_body(stream, content_length: int | None, content_encoding: str | None, limit: int) -> bytes:
    """The decompressed body, refusing anything that is or inflates past `limit` bytes."""
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"body of {content_length} bytes exceeds the limit of {limit} bytes")
    raw = _read_limited(stream, limit)
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return inflate(raw, limit, zlib.MAX_WBITS | 16, "gzip")
    if encoding == "deflate":
        # RFC 9110's deflate is zlib-wrapped, which is what the Python exporter
        # sends; some clients send raw deflate, so fall back to that.
        try:
            return inflate(raw, limit, zlib.MAX_WBITS, "deflate")
        except MalformedRequest:
            return inflate(raw, limit, -zlib.MAX_WBITS, "deflate")
    raise UnsupportedMediaType(f"unsupported content encoding {encoding!r}: send gzip, deflate or no encoding")


def _read_limited(stream, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return b"".join(chunks)


def inflate(data: bytes, limit: int, wbits: int, name: str) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as error:
        raise MalformedRequest(f"body is not valid {name} data: {error}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"body inflates past the limit of {limit} bytes")
    if not decompressor.eof:
        raise MalformedRequest(f"{name} body is truncated")
    return out

"""The two kinds of ingest error, and how each maps to HTTP and gRPC.

OTLP clients retry only retryable answers (HTTP 429/502/503/504, gRPC
UNAVAILABLE and friends, see the OTLP specification's "Failures" sections).
So an error either is permanent (the same request will fail again: 4xx,
never retried) or retryable (try again shortly: 503 with Retry-After, gRPC
UNAVAILABLE with RetryInfo). Codes are google.rpc.Code numbers so that this
module needs neither Flask nor grpc.
"""

from __future__ import annotations

# google.rpc.Code values
INVALID_ARGUMENT = 3
PERMISSION_DENIED = 7
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class IngestError(Exception):
    http_status = 500
    grpc_code = 13  # INTERNAL
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PermanentError(IngestError):
    """The request itself is wrong; sending it again cannot succeed."""

    http_status = 400
    grpc_code = INVALID_ARGUMENT


class MalformedRequest(PermanentError):
    pass


class UnsupportedMediaType(PermanentError):
    http_status = 415


class MethodNotAllowed(PermanentError):
    http_status = 405


class PayloadTooLarge(PermanentError):
    # Not RESOURCE_EXHAUSTED: the Python exporter retries that code, and the
    # same body can never fit.
    http_status = 413


class StorageRejected(PermanentError):
    """ClickHouse refused the data itself (a parse or type error): sending the
    same spans again cannot succeed. The batcher isolates the export that
    caused it, so the others in its insert are still stored."""


class Unauthenticated(PermanentError):
    http_status = 401
    grpc_code = UNAUTHENTICATED


class Forbidden(PermanentError):
    http_status = 403
    grpc_code = PERMISSION_DENIED


class RetryableError(IngestError):
    """The client should send the same request again shortly. Anything stored
    meanwhile by this attempt is recognised as a duplicate then."""

    http_status = 503
    grpc_code = UNAVAILABLE
    retryable = True

    def __init__(self, message: str, retry_after_seconds: int = 2):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Overloaded(RetryableError):
    pass


class StorageUnavailable(RetryableError):
    pass


class ShuttingDown(RetryableError):
    pass

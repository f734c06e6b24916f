"""Per request: a request id, an access log line, and the request's metrics; for HTTP and gRPC alike.

HTTP: the client's `X-Request-Id` is kept when it is safe (app.logs), else
one is made; it is returned in the response's `X-Request-Id` and stamped on
every log line written while the request runs. The access line has the
method, the path (never the query string), the route, the status, the
duration and the client's address; never a header value, so never a key.

gRPC: the same, from and to the `x-request-id` metadata, through a server
interceptor that ingest/grpc.py accepts without knowing what it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import Token
from typing import TYPE_CHECKING, Any

import grpc
from flask import Flask, Response, g, request

from app.logs import REQUEST_ID_HEADER, accepted_request_id, printable, request_id

if TYPE_CHECKING:
    from app.metrics import Metrics

access_log = logging.getLogger("ai_usage.access")

_GRPC_REQUEST_ID = REQUEST_ID_HEADER.lower()  # gRPC metadata keys are lowercase


def init_app(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def begin() -> None:
        g.request_started = time.perf_counter()
        g.request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = request_id.set(g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        started = g.get("request_started")
        if started is None:  # a request that failed before `begin` ran
            return response
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_HEADER] = g.request_id
        rule = request.url_rule.rule if request.url_rule is not None else None
        metrics.request_finished(rule, request.method, response.status_code, seconds)
        if not access_log.isEnabledFor(logging.INFO):
            return response  # AI_USAGE_LOG_LEVEL=WARNING: skip building the line
        path = printable(request.path)
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            path,
            response.status_code,
            seconds * 1000,
            extra={
                "method": printable(request.method, 16),
                "path": path,
                "route": rule,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
                "remote_addr": request.remote_addr,
                "user_agent": printable(request.user_agent.string, 256) or None,
            },
        )
        return response

    @app.teardown_request
    def end(_error: BaseException | None) -> None:
        token: Token[str | None] | None = g.pop("request_id_token", None)
        if token is not None:
            # The thread serves other requests next: none of them may inherit this id.
            request_id.reset(token)


class GrpcRequestLog(grpc.ServerInterceptor):
    """Request ids and access log lines for OTLP/gRPC calls."""

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        incoming = next((value for key, value in details.invocation_metadata or () if key == _GRPC_REQUEST_ID), None)
        return grpc.unary_unary_rpc_method_handler(
            _logged(handler.unary_unary, details.method, incoming),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _logged(behaviour: Callable[[Any, grpc.ServicerContext], Any], method: str, incoming: Any) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(message: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        rid = accepted_request_id(incoming if isinstance(incoming, str) else None)
        token = request_id.set(rid)
        context.send_initial_metadata(((_GRPC_REQUEST_ID, rid),))
        status = "UNKNOWN"  # what grpc answers when the behaviour raises unexpectedly
        try:
            reply = behaviour(message, context)
            status = _code_name(context.code())
            return reply
        except Exception:
            if context.code() is not None:
                status = _code_name(context.code())  # an abort
            raise
        finally:
            seconds = time.perf_counter() - started
            access_log.info(
                "gRPC %s %s %.1fms",
                method,
                status,
                seconds * 1000,
                extra={
                    "method": "gRPC",
                    "path": method,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "remote_addr": context.peer(),
                },
            )
            request_id.reset(token)

    return call


def _code_name(code: Any) -> str:
    if code is None:
        return grpc.StatusCode.OK.name
    return code.name if isinstance(code, grpc.StatusCode) else str(code)

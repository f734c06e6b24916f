"""Logs: one JSON object per line on stderr (or plain text), each carrying the request id.

A request id belongs to one HTTP request or gRPC call. `app.observability`
sets it in `request_id` (a context variable, so each request thread sees its
own) for as long as the request runs; `RequestIdFilter`, on the one handler
`configure_logging` installs, stamps it on every record logged meanwhile, by
any logger. Records never carry headers: neither the Authorization header nor
any key is ever logged.

`ai-usage serve` configures this in the gunicorn master before it forks (and
`GunicornLogger` routes gunicorn's own messages through the same handler).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from gunicorn.glogging import Logger as _GunicornBaseLogger

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Incoming ids are kept only when short and made of characters that are safe
# in a header and a log line (UUIDs, W3C trace ids, ULIDs, base64): anything
# else, CR/LF included, is replaced, so a client cannot forge log lines or
# response headers through it.
REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,%d}" % MAX_REQUEST_ID_LENGTH)

# What every LogRecord has; anything else on a record was passed as `extra`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "taskName",
}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(incoming: str | None) -> str:
    """The client's request id when it is safe to keep, else a new one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def printable(text: str, limit: int = 2048) -> str:
    """Client-supplied text (a decoded path, a user agent) made safe for a text log line."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on each record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, request_id, then any `extra` fields, then the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: a line is plain ASCII whatever the client sent; newlines are escaped.
        return json.dumps(entry, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


class ServiceHandler(logging.StreamHandler):
    """The one handler `configure_logging` installs on the root logger."""


def configure_logging(level: str | int = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records to stderr in `fmt`, with request ids; replaces an earlier call's handler."""
    handler = ServiceHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, ServiceHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class GunicornLogger(_GunicornBaseLogger):
    """gunicorn's own messages (workers booting, timeouts) as the service's log lines.

    gunicorn gives its error logger a handler of its own; here it propagates
    to the root handler instead, so they are JSON lines like the rest. Its
    access log stays off: the app writes access lines with request ids.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from app.settings import ConfigError, Settings

        try:
            settings = Settings.from_env()
        except ConfigError:
            settings = Settings()  # on_starting (or `ai-usage serve`) reports the error itself
        configure_logging(settings.log_level, settings.log_format)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True

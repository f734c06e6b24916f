"""Log lines and request ids on plain data (unit tier): the formatters, the filter, id validation."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app.logs import MAX_REQUEST_ID_LENGTH, accepted_request_id, configure_logging, printable, request_id
from app.settings import ConfigError, Settings


@pytest.fixture
def capture():
    """configure_logging into a buffer; the root logger restored afterwards."""
    root = logging.getLogger()
    level = root.level
    installed: list[logging.Handler] = []

    def start(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        installed.append(configure_logging("INFO", fmt, stream))
        return stream

    yield start
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    "incoming",
    ["4bf92f3577b34da6a3ce929d0e0e4736", "req-1", "01HV6Z3ZK4Q6Y1B2C3D4E5F6G7", "a.b:c_d-e", "YWJj+ZGVm/Z2g=", "x" * MAX_REQUEST_ID_LENGTH],
)
def test_a_safe_request_id_is_kept(incoming):
    assert accepted_request_id(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [None, "", "x" * (MAX_REQUEST_ID_LENGTH + 1), "abc\r\nforged: 1", "abc\n", "with space", 'quote"}', "\x1b[31mred", "ünïcode", "a;b", "<script>"],
)
def test_anything_else_is_replaced_by_a_new_id(incoming):
    replaced = accepted_request_id(incoming)
    assert replaced != incoming and len(replaced) == 32 and int(replaced, 16) >= 0
    assert accepted_request_id(incoming) != replaced, "a fresh id each time"


def test_printable_escapes_control_characters_and_truncates():
    assert printable("/a\r\nb\x1b") == "/a\\r\\nb\\x1b"
    assert printable("/plain/ünïcode") == "/plain/ünïcode"
    assert printable("x" * 10, limit=4) == "xxxx..."


def test_json_lines_carry_the_request_id_extras_and_the_traceback(capture):
    stream = capture("json")
    log = logging.getLogger("tests.logs")
    token = request_id.set("req-42")
    try:
        log.info("two\nlines %s", "ünï", extra={"status": 503, "path": "/v1/traces"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        request_id.reset(token)
    log.warning("outside any request")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, "a newline in a message stays inside its line"
    assert all(line.isascii() for line in lines)
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines ünï" and first["level"] == "INFO" and first["logger"] == "tests.logs"
    assert (first["request_id"], first["status"], first["path"]) == ("req-42", 503, "/v1/traces")
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert second["request_id"] == "req-42" and second["level"] == "ERROR"
    assert "ValueError: boom" in second["exception"]
    assert "request_id" not in third


def test_text_lines_show_the_request_id(capture):
    stream = capture("text")
    log = logging.getLogger("tests.logs")
    token = request_id.set("req-7")
    log.info("inside")
    request_id.reset(token)
    log.info("outside")
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith("INFO tests.logs [req-7] inside")
    assert outside.endswith("INFO tests.logs [-] outside")


def test_a_second_configuration_replaces_the_first_handler(capture):
    first = capture("json")
    second = capture("json")
    logging.getLogger("tests.logs").warning("once")
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1


def test_log_format_setting():
    assert Settings.from_env({}).log_format == "json"
    assert Settings.from_env({"AI_USAGE_LOG_FORMAT": " TEXT "}).log_format == "text"
    with pytest.raises(ConfigError, match="AI_USAGE_LOG_FORMAT"):
        Settings.from_env({"AI_USAGE_LOG_FORMAT": "xml"})

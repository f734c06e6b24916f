"""Decompression bombs, and a bare HTTP/2 gRPC call that can send one.

A bomb is a few megabytes of deflate data that inflate to gigabytes of zeros.
It is built without ever holding the inflated data: a full flush resets the
compressor, so compressing the same block of zeros again yields the same
bytes, which are repeated. The stream is never finished (no final block, no
trailer): a receiver that respects its limit stops long before the end.

The gRPC client (h2, hand-driven) exists because grpc's own client cannot send
a message that is already compressed: it compresses what it is given, which
would need the gigabytes in memory first.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions

GZIP, ZLIB, RAW_DEFLATE = 31, 15, -15  # zlib wbits of each container
BLOCK = 16 * 1024 * 1024


def bomb(wbits: int, inflated_bytes: int) -> bytes:
    """Deflate data (gzip, zlib or raw container) inflating to `inflated_bytes` zeros, about 1/1000 of that size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(BLOCK)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * (inflated_bytes // BLOCK - 1)


def grpc_call(port: int, method: str, message: bytes, *, compressed: bool, encoding: str = "gzip",
              timeout: float = 30) -> tuple[int | None, str, float]:
    """One unary call over a bare HTTP/2 connection: (grpc-status, grpc-message, seconds to the answer).

    The message is framed as gRPC does (flag byte, 32-bit length) with the
    compressed flag as given, then sent as the flow-control windows allow;
    the server may answer, and close the stream, before all of it is sent.
    """
    frame = struct.pack(">BI", 1 if compressed else 0, len(message)) + message
    started = time.monotonic()
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    status: int | None = None
    detail = ""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        headers = [
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-encoding", encoding),
            ("grpc-accept-encoding", "identity,gzip"),
        ]
        connection.send_headers(stream, headers)
        sock.sendall(connection.data_to_send())
        sent, open_stream = 0, True
        while open_stream and time.monotonic() - started < timeout:
            while sent < len(frame):
                window = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = frame[sent:sent + window]
                sent += len(chunk)
                try:
                    connection.send_data(stream, chunk, end_stream=sent >= len(frame))
                except h2.exceptions.StreamClosedError:
                    sent = len(frame)
            sock.sendall(connection.data_to_send())
            data = sock.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    for name, value in event.headers:
                        if name == "grpc-status":
                            status = int(value)
                        elif name == "grpc-message":
                            detail = unquote(value)
                elif isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)) and event.stream_id == stream:
                    open_stream = False
            sock.sendall(connection.data_to_send())
    return status, detail, time.monotonic() - started

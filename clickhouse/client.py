"""Connections to ClickHouse, embedded (chdb) or a server, through clickhouse-connect.

`CLICKHOUSE_URL` decides:
- ``chdb:///absolute/path[?database=name]`` runs ClickHouse inside this process.
  chdb hosts one engine per process, so everything that touches it (receiver,
  writer, API) must live in one process: threads, not worker processes.
- ``http(s)://user:password@host:port/database`` talks to a server or cluster.

Each thread gets its own client: a chdb client serialises calls on its handle
and an HTTP client must not share a session between concurrent queries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlencode, urlparse, urlunparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

DEFAULT_DATABASE = "default"
UNKNOWN_DATABASE = 81


@dataclass(frozen=True)
class Target:
    url: str
    database: str
    embedded: bool
    path: str = ""  # the data directory of an embedded engine

    @classmethod
    def parse(cls, url: str) -> Target:
        parsed = urlparse(url)
        if parsed.scheme == "chdb":
            if parsed.netloc or not parsed.path.startswith("/"):
                raise ValueError("an embedded CLICKHOUSE_URL must be chdb:///absolute/path")
            query = parse_qs(parsed.query)
            database = query.pop("database", [DEFAULT_DATABASE])[0]
            rest = urlencode(query, doseq=True)
            return cls(f"chdb://{parsed.path}" + (f"?{rest}" if rest else ""), database, True, parsed.path)
        if parsed.scheme in ("http", "https"):
            database = unquote(parsed.path.strip("/")) or DEFAULT_DATABASE
            return cls(urlunparse(parsed._replace(path="")), database, False)
        raise ValueError(f"unsupported CLICKHOUSE_URL scheme {parsed.scheme!r}")

    def connect(self, database: str | None = None) -> Client:
        database = database or self.database
        if self.embedded:
            return clickhouse_connect.get_client(dsn=self.url, database=database)
        # No session id: the server would refuse concurrent queries in one session.
        return clickhouse_connect.get_client(
            dsn=self.url, database=database, autogenerate_session_id=False, send_receive_timeout=60
        )


class Database:
    """The service's handle on ClickHouse: a client per thread, created on first use."""

    def __init__(self, url: str):
        self.target = Target.parse(url)
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self.target.embedded

    @property
    def name(self) -> str:
        return self.target.database

    def client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._connect()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def discard_client(self) -> None:
        """Drop this thread's client after a failure; the next call reconnects."""
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client may fail again
                pass

    def ensure_database(self) -> None:
        """Create the configured database when it does not exist yet."""
        try:
            self.client().command("SELECT 1")
        except DatabaseError as error:
            if getattr(error, "code", None) != UNKNOWN_DATABASE and "UNKNOWN_DATABASE" not in str(error):
                raise
            self.discard_client()
            bootstrap = self.target.connect(DEFAULT_DATABASE)
            try:
                bootstrap.command(
                    "CREATE DATABASE IF NOT EXISTS {name:Identifier}", parameters={"name": self.name}
                )
            finally:
                bootstrap.close()

    def ping(self) -> bool:
        try:
            return self.client().command("SELECT 1") == 1
        except (ClickHouseError, OSError):
            self.discard_client()
            return False

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def _connect(self) -> Client:
        return self.target.connect()


# What clickhouse-connect escapes in a String parameter (backslash first).
_PARAMETER_ESCAPES = ("\\", "'", "`", "\t", "\n")


class TextParameter:
    """A large String parameter, escaped at C speed.

    clickhouse-connect escapes a `str` parameter one character at a time in
    Python, about 0.1 µs per character: for the ingester's key lists (100
    characters per span) that was most of a duplicate look-up. Any other
    value type it binds as `str(value)`, so this object hands over text
    escaped the same way by `str.replace`. The value is still bound as a
    parameter (`{name:String}`), never formatted into the SQL text.
    """

    __slots__ = ("escaped",)

    def __init__(self, text: str):
        for char in _PARAMETER_ESCAPES:
            text = text.replace(char, "\\" + char)
        self.escaped = text

    def __str__(self) -> str:
        return self.escaped

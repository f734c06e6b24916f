"""The write stage as the pipeline sees it: the Store protocol and the records that cross it.

clickhouse.operations.OperationStore implements it against ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import msgspec

from ingest.mapping import ModelCall


# One per stored row, built in C like ModelCall. Nothing changes it after it is built.
class StagedCall(msgspec.Struct, gc=False):
    """A model call to store: its version and its resolved context (CONTEXT_FIELDS order)."""

    call: ModelCall
    version: int
    context: tuple[str, ...]


class LookupKeys(NamedTuple):
    """The keys of the duplicate look-up, as columns: start time ns, trace id, span id."""

    starts: list[int]
    trace_ids: list[str]
    span_ids: list[str]


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the resolver needs of a stored operation's live row."""

    timestamp_ns: int
    parent_span_id: str
    has_tokens: bool
    version: int
    context: tuple[str, ...]
    # The configured context keys found among its stored attributes.
    context_attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredState:
    """A span's stored history: its latest version, and its live state if it counts now."""

    max_version: int
    live: LiveState | None


@dataclass(frozen=True, slots=True)
class Change:
    """A stored operation's wanted state: counted or not, and with which context."""

    timestamp_ns: int
    trace_id: str
    span_id: str
    counted: bool
    context: tuple[str, ...]


class Store(Protocol):
    def stage(self, calls: Sequence[StagedCall]) -> None:
        """Store new operations, all in one write."""

    def correct(self, changes: Sequence[Change]) -> None:
        """Cancel the live state of stored operations and write their new state."""

    def lookup(self, keys: LookupKeys) -> dict[tuple[str, str], StoredState]:
        """Stored states of the spans with these keys, by (trace id, span id)."""

    def in_traces(self, trace_ids: Iterable[str], start_ns: int, end_ns: int) -> dict[tuple[str, str], StoredState]:
        """Stored states of the operations of some traces within a time range."""

    def healthy(self) -> bool:
        """Whether storage answers (probed while it is down)."""

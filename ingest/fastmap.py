"""Decode and map a protobuf export in one compiled pass (ingest/_spanmap.c).

It gives what `codec.decode_protobuf` and then `IngestService.map` give for
an export in the usual shape: a `SpanFact` per span and a `Candidate` per
model call, with the same records (`SpanRecord.attributes` is None: nothing
after mapping reads it). It reads only the attribute keys that mapping reads
(context keys, operation keys, token aliases, `error.type`), so the Python
objects of the others are never made, and it reads the body without the
interpreter lock.

Where the compiled pass would have to decide something unusual it returns
None and the caller takes the Python path, which decodes the body again and
answers as always: a malformed body (the Python path words the 400), a call
that would be rejected (it words the partial success), a context value that
is not a string, an operation name that is not ASCII text, a token count
sent as text or bytes, nesting deeper than the pass follows.
tests/unit/test_spanmap.py holds the two paths to the same results.

For a call in its plain subset (ingest/_spanmap.c `write_row` lists what
is outside it) the pass also writes the call's `operations` row as the
mapping view would (clickhouse/mapping.py), into `ModelCall.row`, so that
ClickHouse neither parses the span's attributes nor runs the view for it;
tests/integration/test_direct_rows.py compares those rows with the view's.

The extension is built by `pip install` where a C compiler is present (the
README's commands, CI); without it everything takes the Python path.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from clickhouse import mapping as view
from ingest import codec
from ingest import conventions as c
from ingest.context import Candidate, SpanFact
from ingest.mapping import (
    MAX_TIMESTAMP_NS,
    MIN_TIMESTAMP_NS,
    TOKEN_ALIASES,
    Mapper,
    ModelCall,
)

try:
    from ingest import _spanmap
except ImportError:  # installed without a compiler
    _spanmap = None

AVAILABLE = _spanmap is not None

# What the compiled pass needs to write a call's `operations` row as the
# mapping view does (clickhouse/mapping.py): the alias lists in the order of
# _spanmap.c's F_ fields, then the keys with a column of their own, and the
# view's other constants.
ROW_FIELDS = (
    c.PROVIDER,
    c.REQUEST_MODEL_BEFORE_INVOCATION,
    c.REQUEST_MODEL_AFTER_INVOCATION,
    c.RESPONSE_MODEL,
    c.INPUT_TOKENS,
    c.OUTPUT_TOKENS,
    c.TOTAL_TOKENS,
    c.CACHE_READ_TOKENS,
    c.CACHE_WRITE_TOKENS,
    c.REASONING_TOKENS,
    c.STREAMING,
    c.CONVERSATION,
    (c.SERVER_ADDRESS,),
)
ROW_PLAN = (
    ROW_FIELDS,
    view.MAPPED_KEYS,
    c.INVOCATION_PARAMETERS,
    c.SERVICE_NAME,
    tuple(c.PROVIDER_NAMES.items()),
    tuple(sorted(c.STREAMING_OPERATIONS)),
    view.MAX_ATTRIBUTE_VALUE_CHARS,
    view.MAX_ATTRIBUTES,
)
# Staged calls' rows, completed with what the writer decided, as one Native
# block (clickhouse/staging.py DIRECT_COLUMNS; None when not built).
native_block = _spanmap.native_block if _spanmap is not None else None
# clickhouse.staging.protobuf_row for many calls at once, joined (None when not built).
compiled_rows = _spanmap.protobuf_rows if _spanmap is not None else None


class CompiledMapper:
    def __init__(self, mapper: Mapper):
        self._mapper = mapper
        self._compiled = _spanmap.Mapper(
            context_keys=mapper.context_key_list,
            operation_keys=c.OPERATION_KEYS,
            model_calls=[(key, value, capability) for (key, value), capability in c.MODEL_CALLS.items()],
            token_groups=TOKEN_ALIASES,
            error_key=c.ERROR_TYPE,
            timestamp_range=(MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS),
            status_error=codec.STATUS_ERROR,
            types=(codec.SpanRecord, SpanFact, ModelCall, Candidate),
            make_resource=self._resource,
            make_scope=self._scope,
            row_plan=ROW_PLAN,
        )

    def map(self, body: bytes) -> tuple[list[SpanFact], list[Candidate], int] | None:
        """(facts, candidates, spans) of a protobuf body, or None: take the Python path."""
        return self._compiled.map(body, max(0, self._mapper.oldest_start_ns()))

    def _resource(self, raw: bytes) -> tuple[codec.Resource, dict[str, str]] | None:
        try:
            resource = codec.resource_of(raw)
        except (DecodeError, RecursionError):
            return None
        return resource, self._mapper.context_values(resource.attributes)

    def _scope(self, raw: bytes) -> tuple[codec.Scope, bool] | None:
        try:
            scope = codec.scope_of(raw)
        except (DecodeError, RecursionError):
            return None
        return scope, scope.name in self._mapper.ignored_scopes


def compiled_mapper(mapper: Mapper) -> CompiledMapper | None:
    """The compiled mapper for this configuration, or None (not built, or more keys than it holds)."""
    if _spanmap is None:
        return None
    try:
        return CompiledMapper(mapper)
    except ValueError:  # more context keys than the compiled table holds
        return None

"""The mapping of a staged span to an `operations` row, as SQL generated from ingest/conventions.py.

The alias tables live once, in `ingest.conventions`; this module turns them
into the SELECT of the materialized view `incoming_spans_mv`
(incoming_spans → operations). `clickhouse.migrate` keeps the view equal to
`view_query()` as a repeatable migration: when the generated SQL changes (a
new alias, say), the view is altered in place at the next start.

Rules, as in the contract (docs: otel-ingest.md, "Field mapping"):
- first key present wins; an empty string counts as absent;
- numbers may arrive as int, double or string; negative, fractional or
  unparseable counts mean "unknown" and the next key is tried;
- total tokens: the emitter's total when present, else input + output;
- failed: status ERROR or error.type present; error type from error.type,
  else the exception event's type; message from the status, else the
  exception event's message;
- attributes that feed a column are not repeated in the `attributes` map.

ingest/_spanmap.c (`write_row`) writes the same rows itself for the spans
in its plain subset: a change to these rules needs the same change there,
and tests/integration/test_direct_rows.py fails until both agree.
"""

from __future__ import annotations

from ingest import conventions as c

VIEW = "incoming_spans_mv"

# Limits on the attributes map of one row (huge prompt attributes exist).
MAX_ATTRIBUTE_VALUE_CHARS = 16_384
MAX_ATTRIBUTES = 256


def _quote(text: str) -> str:
    """A SQL string literal of one of our own constants (never of input data)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


def _scalar_json(x: str) -> str:
    """A ScalarValue tuple as JSON text (inside arrays and key-value lists)."""
    return (
        f"multiIf({x}.stringValue IS NOT NULL, toJSONString(assumeNotNull({x}.stringValue)), "
        f"{x}.boolValue IS NOT NULL, if(assumeNotNull({x}.boolValue), 'true', 'false'), "
        f"{x}.intValue IS NOT NULL, toString({x}.intValue), "
        f"{x}.doubleValue IS NOT NULL, toString({x}.doubleValue), 'null')"
    )


def _render(v: str) -> str:
    """An AnyValue tuple as text: strings as they are, numbers and booleans
    spelled out, arrays and key-value lists as JSON.

    One coalesce over the members (each NULL unless set, in the order the
    first set one wins); the JSON of an array or list is built only for a
    value that has one. Per attribute this is a few times cheaper than
    testing each member in turn with multiIf."""
    array = f"'[' || arrayStringConcat(arrayMap(x -> {_scalar_json('x')}, {v}.arrayValue.values), ', ') || ']'"
    kvlist = (
        f"'{{' || arrayStringConcat(arrayMap(pair -> toJSONString(pair.key) || ': ' || {_scalar_json('pair.value')}, "
        f"{v}.kvlistValue.values), ', ') || '}}'"
    )
    return (
        f"coalesce({v}.stringValue, toString({v}.boolValue), toString({v}.intValue), toString({v}.doubleValue), "
        f"if(notEmpty({v}.arrayValue.values), {array}, NULL), "
        f"if(notEmpty({v}.kvlistValue.values), {kvlist}, NULL), "
        f"base64Encode({v}.bytesValue), '')"
    )


# The attributes arrive as two parallel arrays built once per row: `ks`, the
# keys, and `vs`, the values rendered as text. A field reads one key's value
# as `vs[indexOf(ks, key)]` ('' when absent: index 0 is the default), one
# plain function per alias. An earlier form that ran lambdas over every
# attribute for every alias list (arrayMap, arrayFilter, arraySort) cost
# several times more per row; these expressions grow with the alias lists
# instead, which costs a little planning once per insert. A key sent twice
# is read at its first occurrence.


def _value(key: str) -> str:
    """The value of one key ('' when absent)."""
    return f"vs[indexOf(ks, {_quote(key)})]"


def _first_text(keys) -> str:
    """The first non-empty value among `keys`, else ''."""
    return "coalesce(" + ", ".join(f"nullIf({_value(key)}, '')" for key in keys) + ", '')"


def _count(value: str) -> str:
    """A usable count (a non-negative whole number below 1e18), else NULL."""
    number = f"toFloat64OrNull({value})"
    return f"if({number} >= 0 AND {number} < 1e18 AND {number} = floor({number}), toUInt64({number}), NULL)"


def _first_count(keys) -> str:
    """The first usable count among `keys`: NULL when none is a non-negative whole number."""
    return "coalesce(" + ", ".join(_count(_value(key)) for key in keys) + ")"


def _first_flag(keys, otherwise: str = "false") -> str:
    """The first key present decides: true, 1 or yes (any case) is true."""
    decisions = ", ".join(f"has(ks, {_quote(key)}), lower({_value(key)}) IN ('true', '1', 'yes')" for key in keys)
    return f"multiIf({decisions}, {otherwise})"


# Keys whose values have a column of their own; the attributes map leaves them out.
MAPPED_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(
        c.OPERATION_KEYS
        + c.PROVIDER
        + c.REQUEST_MODEL_BEFORE_INVOCATION
        + c.REQUEST_MODEL_AFTER_INVOCATION
        + c.RESPONSE_MODEL
        + c.INPUT_TOKENS
        + c.OUTPUT_TOKENS
        + c.TOTAL_TOKENS
        + c.CACHE_READ_TOKENS
        + c.CACHE_WRITE_TOKENS
        + c.REASONING_TOKENS
        + (c.ERROR_TYPE, c.SERVER_ADDRESS)
        + c.STREAMING
        + c.CONVERSATION
    )
)


def view_query() -> str:
    """The SELECT of incoming_spans_mv."""
    providers = sorted(c.PROVIDER_NAMES)
    invocation = _value(c.INVOCATION_PARAMETERS)
    invocation_model = (
        f"if(isValidJSON({invocation}), coalesce(nullIf(JSONExtractString({invocation}, 'model'), ''), "
        f"nullIf(JSONExtractString({invocation}, 'model_name'), '')), NULL)"
    )
    failed = f"(span.status.code = 2 OR {_value(c.ERROR_TYPE)} != '')"
    unmapped = f"NOT has({_array(MAPPED_KEYS)}, k)"
    # OpenInference names the requested model only inside its invocation parameters.
    request_model = (
        f"coalesce(nullIf({_first_text(c.REQUEST_MODEL_BEFORE_INVOCATION)}, ''), {invocation_model}, "
        f"{_first_text(c.REQUEST_MODEL_AFTER_INVOCATION)})"
    )
    return f"""
WITH
    {failed} AS failed,
    {_first_count(c.INPUT_TOKENS)} AS input_count,
    {_first_count(c.OUTPUT_TOKENS)} AS output_count,
    {_first_text(c.PROVIDER)} AS provider_text,
    {_first_text((c.SERVER_ADDRESS,))} AS server_text,
    arrayFilter(k -> {unmapped}, ks) AS unmapped_keys,
    arrayFilter((v, k) -> {unmapped}, vs, ks) AS unmapped_values
SELECT
    fromUnixTimestamp64Nano(toInt64(decision.startTimeUnixNano), 'UTC') AS timestamp,
    decision.traceId AS trace_id,
    decision.spanId AS span_id,
    decision.parentSpanId AS parent_span_id,
    toInt8(1) AS sign,
    decision.version AS version,
    ifNull(arrayFirst(kv -> kv.key = {_quote(c.SERVICE_NAME)}, resource.attributes).value.stringValue, '') AS service_name,
    scope.name AS scope_name,
    scope.version AS scope_version,
    span.name AS span_name,
    decision.capability AS capability,
    decision.operation AS operation,
    transform(lower(provider_text), {_array(providers)}, {_array(c.PROVIDER_NAMES[p] for p in providers)}, lower(provider_text)) AS provider,
    provider_text AS provider_raw,
    {request_model} AS request_model,
    {_first_text(c.RESPONSE_MODEL)} AS response_model,
    decision.profileId AS profile_id,
    decision.profileAlias AS profile_alias,
    decision.userId AS user_id,
    decision.userName AS user_name,
    decision.featureType AS feature_type,
    decision.featureId AS feature_id,
    decision.entityId AS entity_id,
    decision.entityType AS entity_type,
    ifNull(input_count, 0) AS input_tokens,
    ifNull(output_count, 0) AS output_tokens,
    ifNull({_first_count(c.TOTAL_TOKENS)}, ifNull(input_count, 0) + ifNull(output_count, 0)) AS total_tokens,
    ifNull({_first_count(c.CACHE_READ_TOKENS)}, 0) AS cache_read_tokens,
    ifNull({_first_count(c.CACHE_WRITE_TOKENS)}, 0) AS cache_write_tokens,
    ifNull({_first_count(c.REASONING_TOKENS)}, 0) AS reasoning_tokens,
    decision.endTimeUnixNano - decision.startTimeUnixNano AS duration_ns,
    NOT failed AS succeeded,
    if(failed, coalesce(nullIf({_value(c.ERROR_TYPE)}, ''), decision.exceptionType), '') AS error_type,
    if(failed, coalesce(nullIf(span.status.message, ''), decision.exceptionMessage), '') AS error_message,
    -- OpenInference says `"stream": true` only inside its invocation parameters.
    {_first_flag(c.STREAMING, f"isValidJSON({invocation}) AND JSONExtractBool({invocation}, 'stream')")}
        OR decision.operation IN {_array(sorted(c.STREAMING_OPERATIONS))} AS streaming,
    {_first_text(c.CONVERSATION)} AS conversation_id,
    -- Semantic Kernel writes a whole endpoint URL here.
    if(position(server_text, '://') > 0, domain(server_text), server_text) AS server_address,
    mapFromArrays(
        arraySlice(unmapped_keys, 1, {MAX_ATTRIBUTES}),
        arrayMap(v -> if(lengthUTF8(v) > {MAX_ATTRIBUTE_VALUE_CHARS}, substringUTF8(v, 1, {MAX_ATTRIBUTE_VALUE_CHARS}) || '…', v),
                 arraySlice(unmapped_values, 1, {MAX_ATTRIBUTES}))
    ) AS attributes
FROM (
    SELECT resource, scope, span, decision,
        arrayMap(kv -> kv.key, span.attributes) AS ks,
        arrayMap(kv -> {_render('kv.value')}, span.attributes) AS vs
    FROM incoming_spans
)
"""


def view_ddl() -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {VIEW} TO operations AS {view_query()}"

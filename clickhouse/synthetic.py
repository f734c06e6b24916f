"""Synthetic operations written straight into ClickHouse, for benchmarks and demos.

Every value is computed by ClickHouse from deterministic hashes of (seed, row
number) in `INSERT INTO operations SELECT ... FROM numbers(...)`: no row passes
through Python, so 100 million rows load in minutes. The same arguments
(including `end`) always give the same rows, whatever the batch size, because
each row depends only on the seed and its global row number.

What the data looks like:
- Time: row numbers map monotonically onto the hours of the range, with more
  rows in working hours, fewer at weekends and slow growth over the range, so
  each batch covers a slice of time, as a live ingest would.
- Providers and models: the `MODELS` catalogue, each model tied to its
  provider. Umbraco.AI profiles configure one model each, so most operations
  take their model from their profile; the rest (other services, no profile)
  pick a model directly.
- Popularity: models, profiles and users follow a Zipf law (s = 1), sampled as
  `floor((n + 1) ** u) - 1` for a uniform u: one `pow` per row, no table.
- Users: `USERS` GUID-like ids with names; `ANONYMOUS_SHARE` have no user.
- Tokens: log-normal per capability (Chat: input ~700, output ~180; Embedding:
  input only), durations that grow with the output, `FAILURE_SHARE` failures
  with an error type and message and no usage.
"""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime

from clickhouse.client import Database

log = logging.getLogger(__name__)

# Rows per INSERT ... SELECT. Large enough that per-statement costs vanish,
# small enough that one statement's sort buffers stay around a gigabyte.
BATCH_ROWS = 5_000_000

PROFILES = 300
USERS = 5_000
ANONYMOUS_SHARE = 0.12  # operations without a user (anonymous front-end calls)
NO_PROFILE_SHARE = 0.06  # operations from services that are not Umbraco.AI
FAILURE_SHARE = 0.03

# (provider as stored, provider as emitted, request model, response model,
#  capability, server address, reasoning model), most popular first: the
# Zipf rank of a model is its index here.
MODELS: tuple[tuple[str, str, str, str, str, str, bool], ...] = (
    ("openai", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "Chat", "api.openai.com", False),
    ("anthropic", "anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "Chat", "api.anthropic.com", False),
    ("openai", "openai", "text-embedding-3-small", "text-embedding-3-small", "Embedding", "api.openai.com", False),
    ("azure.ai.openai", "az.ai.openai", "gpt-4o", "gpt-4o-2024-11-20", "Chat", "contoso-ai.openai.azure.com", False),
    ("openai", "openai", "gpt-4.1", "gpt-4.1-2025-04-14", "Chat", "api.openai.com", False),
    ("gcp.gemini", "gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", "Chat", "generativelanguage.googleapis.com", True),
    ("openai", "openai", "gpt-4o", "gpt-4o-2024-08-06", "Chat", "api.openai.com", False),
    ("anthropic", "anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "Chat", "api.anthropic.com", False),
    ("azure.ai.openai", "az.ai.openai", "text-embedding-ada-002", "text-embedding-ada-002", "Embedding", "contoso-ai.openai.azure.com", False),
    ("openai", "openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "Chat", "api.openai.com", False),
    ("aws.bedrock", "aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0", "Chat", "bedrock-runtime.eu-west-1.amazonaws.com", False),
    ("mistral_ai", "mistral_ai", "mistral-large-latest", "mistral-large-2411", "Chat", "api.mistral.ai", False),
    ("openai", "openai", "o3-mini", "o3-mini-2025-01-31", "Chat", "api.openai.com", True),
    ("gcp.gemini", "gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro", "Chat", "generativelanguage.googleapis.com", True),
    ("anthropic", "anthropic", "claude-opus-4-1", "claude-opus-4-1-20250805", "Chat", "api.anthropic.com", False),
    ("openai", "openai", "gpt-5-mini", "gpt-5-mini-2025-08-07", "Chat", "api.openai.com", True),
    ("azure.ai.openai", "az.ai.openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "Chat", "contoso-ai.openai.azure.com", False),
    ("openai", "openai", "text-embedding-3-large", "text-embedding-3-large", "Embedding", "api.openai.com", False),
    ("aws.bedrock", "aws.bedrock", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "Chat", "bedrock-runtime.eu-west-1.amazonaws.com", False),
    ("mistral_ai", "mistral_ai", "mistral-small-latest", "mistral-small-2503", "Chat", "api.mistral.ai", False),
    ("gcp.gemini", "gcp.gemini", "gemini-2.0-flash", "gemini-2.0-flash-001", "Chat", "generativelanguage.googleapis.com", False),
    ("anthropic", "anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", "Chat", "api.anthropic.com", False),
    ("openai", "openai", "gpt-5", "gpt-5-2025-08-07", "Chat", "api.openai.com", True),
    ("gcp.gemini", "gcp.gemini", "gemini-embedding-001", "gemini-embedding-001", "Embedding", "generativelanguage.googleapis.com", False),
    ("aws.bedrock", "aws.bedrock", "amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2:0", "Embedding", "bedrock-runtime.eu-west-1.amazonaws.com", False),
    ("openai", "openai", "o4-mini", "o4-mini-2025-04-16", "Chat", "api.openai.com", True),
    ("azure.ai.openai", "az.ai.openai", "gpt-4.1", "gpt-4.1-2025-04-14", "Chat", "contoso-ai.openai.azure.com", False),
    ("anthropic", "anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219", "Chat", "api.anthropic.com", True),
    ("mistral_ai", "mistral_ai", "mistral-embed", "mistral-embed", "Embedding", "api.mistral.ai", False),
    ("aws.bedrock", "aws.bedrock", "meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0", "Chat", "bedrock-runtime.eu-west-1.amazonaws.com", False),
    ("x_ai", "xai", "grok-3-mini", "grok-3-mini", "Chat", "api.x.ai", True),
    ("mistral_ai", "mistral_ai", "codestral-latest", "codestral-2501", "Chat", "api.mistral.ai", False),
    ("aws.bedrock", "aws.bedrock", "amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0", "Chat", "bedrock-runtime.eu-west-1.amazonaws.com", False),
    ("ollama", "ollama", "llama3.1:8b", "llama3.1:8b", "Chat", "localhost", False),
    ("azure.ai.openai", "az.ai.openai", "text-embedding-3-small", "text-embedding-3-small", "Embedding", "contoso-ai.openai.azure.com", False),
    ("x_ai", "xai", "grok-4", "grok-4-0709", "Chat", "api.x.ai", True),
)

# Profile purposes (alias stem, capability); profile k is purpose k mod len,
# numbered from the second round on ("content-writer", "content-writer-2", ...).
PURPOSES: tuple[tuple[str, str], ...] = (
    ("content-writer", "Chat"), ("seo-description", "Chat"), ("alt-text", "Chat"), ("translator", "Chat"),
    ("summariser", "Chat"), ("product-copy", "Chat"), ("support-assistant", "Chat"), ("search-embeddings", "Embedding"),
    ("tagger", "Chat"), ("proofreader", "Chat"), ("newsletter", "Chat"), ("related-content", "Embedding"),
    ("headline-ideas", "Chat"), ("meta-keywords", "Chat"), ("faq-builder", "Chat"), ("semantic-search", "Embedding"),
    ("tone-checker", "Chat"), ("social-posts", "Chat"), ("code-helper", "Chat"), ("rag-index", "Embedding"),
)

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Lars", "Maya",
    "Niels", "Olivia", "Pavel", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zoe",
    "Anna", "Bram", "Clara", "Dirk", "Eva", "Finn", "Greta", "Henrik", "Isla", "Jan", "Karin", "Liam", "Mette", "Noah",
)
LAST_NAMES = (
    "Andersen", "Bakker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen",
    "Kowalski", "Larsen", "Martin", "Nielsen", "Olsen", "Petersen", "Quist", "Rossi", "Schmidt", "Thomsen",
    "Ulrich", "Visser", "Weber", "Xu", "Yilmaz", "Zimmermann", "Berg", "Dahl", "Holm", "Lund",
)
PROMPTS = ("summarise", "translate", "seo-description", "alt-text", "rewrite", "expand", "shorten", "headline", "tags", "faq")
AGENTS = ("content-agent", "editor-copilot", "migration-agent", "support-agent", "research-agent")
# Services that call models without Umbraco.AI (no profile): (service, scope, scope version).
OTHER_SERVICES: tuple[tuple[str, str, str], ...] = (
    ("docs-assistant", "opentelemetry.instrumentation.openai_v2", "2.1b0"),
    ("support-bot", "openinference.instrumentation.langchain", "0.1.50"),
    ("catalogue-tagger", "opentelemetry.instrumentation.anthropic", "0.47.3"),
)
# (error.type, message); failures pick one uniformly.
ERRORS: tuple[tuple[str, str], ...] = (
    ("429", "429 Too Many Requests: rate limit reached for requests"),
    ("429", "429 Too Many Requests: tokens per minute limit exceeded"),
    ("System.Threading.Tasks.TaskCanceledException", "The request was canceled due to the configured HttpClient.Timeout of 100 seconds elapsing."),
    ("500", "500 Internal Server Error: the server had an error while processing your request"),
    ("503", "503 Service Unavailable: the engine is currently overloaded"),
    ("content_filter", "The response was filtered due to the prompt triggering the content management policy."),
    ("context_length_exceeded", "This model's maximum context length is 128000 tokens; the messages resulted in more."),
    ("401", "401 Unauthorized: incorrect API key provided"),
)

# Relative traffic by hour of day (UTC) and by ISO weekday (Monday first).
HOURLY_WEIGHTS = (
    0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.6, 2.0, 2.1, 2.0,
    1.6, 1.8, 2.0, 1.9, 1.6, 1.2, 0.9, 0.7, 0.6, 0.5, 0.35, 0.2,
)
WEEKDAY_WEIGHTS = (1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.25)
# Traffic at the end of the range relative to its start.
GROWTH = 1.5

COLUMNS: tuple[str, ...] = (
    "timestamp", "trace_id", "span_id", "parent_span_id", "sign", "version",
    "service_name", "scope_name", "scope_version", "span_name",
    "capability", "operation", "provider", "provider_raw", "request_model", "response_model",
    "profile_id", "profile_alias", "user_id", "user_name", "feature_type", "feature_id", "entity_id", "entity_type",
    "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "duration_ns", "succeeded", "error_type", "error_message", "streaming", "conversation_id", "server_address",
    "attributes", "received_at",
)

# One row per number. Names starting with an underscore are intermediate.
# Ids are unique within a seed: the span id and the second half of the trace id
# are intHash64 (a bijection on UInt64) of the row number mixed with the seed.
# Constants are scalar subqueries or parameters, evaluated once per statement.
# u(k) is a uniform in [0, 1) from the k-th derived hash of the row.
_INSERT = """
INSERT INTO operations ({columns})
WITH
    3600000000000 AS _hour_ns,
    {{start_ns:Int64}} AS _start_ns,
    {{end_ns:Int64}} AS _end_ns,
    intDiv(_start_ns, _hour_ns) * _hour_ns AS _h0_ns,
    -- hour slot table: row number -> hour index, each hour's share of slots
    -- proportional to its weight (time of day x weekday x growth x overlap)
    (
        SELECT arrayFlatten(arrayMap((i, c) -> arrayWithConstant(c, toUInt32(i)), range(length(w)), counts))
        FROM (
            SELECT
                intDiv({{end_ns:Int64}} - intDiv({{start_ns:Int64}}, 3600000000000) * 3600000000000 + 3599999999999, 3600000000000) AS hours,
                arrayMap(i -> intDiv({{start_ns:Int64}}, 3600000000000) * 3600000000000 + i * 3600000000000,
                    range(hours)) AS starts,
                arrayMap(hs ->
                    {{hourly:Array(Float64)}}[toHour(fromUnixTimestamp64Nano(hs, 'UTC')) + 1]
                    * {{weekly:Array(Float64)}}[toDayOfWeek(fromUnixTimestamp64Nano(hs, 'UTC'))]
                    * (1 + ({{growth:Float64}} - 1) * (hs - {{start_ns:Int64}}) / ({{end_ns:Int64}} - {{start_ns:Int64}}))
                    * (least({{end_ns:Int64}}, hs + 3600000000000) - greatest({{start_ns:Int64}}, hs)) / 3600000000000,
                    starts) AS w,
                arrayCumSum(w) AS cw,
                {{slots:UInt64}} AS t,
                arrayMap(x -> toUInt64(round(x * t / cw[-1])), cw) AS ends,
                arrayMap((e, i) -> e - if(i = 1, 0, ends[i - 1]), ends, arrayEnumerate(ends)) AS counts
        )
    ) AS _hour_of_slot,
    -- profiles: GUID id, alias, and the model each one is configured with
    (
        SELECT tuple(
            arrayMap(k -> lower(toString(reinterpretAsUUID(concat(
                reinterpretAsFixedString(cityHash64({{seed:UInt64}}, 'profile', k)),
                reinterpretAsFixedString(cityHash64({{seed:UInt64}}, 'profile-2', k)))))), range({{profiles:UInt32}})),
            arrayMap(k -> concat({{purposes:Array(String)}}[k % length({{purposes:Array(String)}}) + 1],
                if(k < length({{purposes:Array(String)}}), '', concat('-', toString(intDiv(k, length({{purposes:Array(String)}})) + 1)))),
                range({{profiles:UInt32}})),
            -- a profile's model: Zipf over the models of its purpose's capability
            arrayMap((k, pool) -> pool[least(length(pool), toUInt32(floor(pow(length(pool) + 1,
                    cityHash64({{seed:UInt64}}, 'profile-model', k) / 18446744073709551616.))))],
                range({{profiles:UInt32}}),
                arrayMap(k -> arrayFilter(
                    m -> {{capabilities:Array(String)}}[m] = {{purpose_capabilities:Array(String)}}[k % length({{purposes:Array(String)}}) + 1],
                    arrayEnumerate({{capabilities:Array(String)}})), range({{profiles:UInt32}}))))
    ) AS _profile_table,
    -- users: GUID id and a name
    (
        SELECT tuple(
            arrayMap(k -> lower(toString(reinterpretAsUUID(concat(
                reinterpretAsFixedString(cityHash64({{seed:UInt64}}, 'user', k)),
                reinterpretAsFixedString(cityHash64({{seed:UInt64}}, 'user-2', k)))))), range({{users:UInt32}})),
            arrayMap(k -> concat(
                {{first_names:Array(String)}}[cityHash64({{seed:UInt64}}, 'first', k) % length({{first_names:Array(String)}}) + 1], ' ',
                {{last_names:Array(String)}}[cityHash64({{seed:UInt64}}, 'last', k) % length({{last_names:Array(String)}}) + 1]),
                range({{users:UInt32}})))
    ) AS _user_table,
    length({{models:Array(String)}}) AS _model_count
SELECT
    fromUnixTimestamp64Nano(_ts_ns, 'UTC') AS _timestamp,
    concat(lower(hex(reinterpretAsFixedString(intHash64(_h + 1)))),
           lower(hex(reinterpretAsFixedString(intHash64(bitXor(_n, _seed_mix + 1)))))) AS _trace_id,
    lower(hex(reinterpretAsFixedString(intHash64(bitXor(_n, _seed_mix))))) AS _span_id,
    if(_u(2) < 0.03, '', lower(hex(reinterpretAsFixedString(intHash64(_h + 30))))) AS _parent_span_id,
    1, 1,
    if(_has_profile, 'umbraco-cms', {{other_services:Array(String)}}[_other + 1]) AS _service,
    if(_has_profile, 'Experimental.Microsoft.Extensions.AI', {{other_scopes:Array(String)}}[_other + 1]),
    if(_has_profile, '9.10.0', {{other_scope_versions:Array(String)}}[_other + 1]),
    concat(_operation, ' ', _request_model),
    _capability,
    if(_is_chat, 'chat', 'embeddings') AS _operation,
    {{providers:Array(String)}}[_model],
    {{providers_raw:Array(String)}}[_model],
    {{models:Array(String)}}[_model] AS _request_model,
    {{response_models:Array(String)}}[_model],
    if(_has_profile, _profile_table.1[_profile], ''),
    if(_has_profile, _profile_table.2[_profile], ''),
    if(_anonymous, '', _user_table.1[_user]),
    if(_anonymous, '', _user_table.2[_user]),
    _feature_type,
    multiIf(_feature_type = 'prompt', {{prompts:Array(String)}}[1 + intHash64(_h + 14) % length({{prompts:Array(String)}})],
            _feature_type = 'agent', {{agents:Array(String)}}[1 + intHash64(_h + 14) % length({{agents:Array(String)}})], ''),
    if(_has_entity, toString(1000 + intHash64(_h + 15) % 20000), ''),
    if(_has_entity, if(_u(16) < 0.85, 'document', 'media'), ''),
    _input, _output, _input + _output,
    if(_succeeded AND _is_chat AND _u(17) < 0.3, toUInt64(_input * _u(18)), 0),
    if(_succeeded AND _is_chat AND _u(17) < 0.05, toUInt64(_input * 0.5 * _u(18)), 0),
    if(_succeeded AND {{reasoning:Array(UInt8)}}[_model] = 1, toUInt64(_output * (0.3 + 0.5 * _u(19))), 0),
    _duration_ns,
    _succeeded,
    if(_succeeded, '', {{error_types:Array(String)}}[_error]),
    if(_succeeded, '', {{error_messages:Array(String)}}[_error]),
    _is_chat AND _u(20) < 0.45,
    if(_is_chat AND _u(21) < 0.4, concat('conv_', lower(hex(reinterpretAsFixedString(intHash64(_h + 31))))), ''),
    {{servers:Array(String)}}[_model],
    if(_is_chat,
        map('gen_ai.request.temperature', toString(round(_u(22), 1)),
            'gen_ai.response.finish_reasons', if(_succeeded, if(_u(23) < 0.9, '["stop"]', '["length"]'), '[]'),
            'gen_ai.request.max_tokens', toString(1024 * (1 + intHash64(_h + 24) % 4))),
        map('gen_ai.embeddings.dimension.count', '1536')),
    fromUnixTimestamp64Milli(intDiv(_ts_ns + toInt64(_duration_ns), 1000000) + 500 + toInt64(_u(25) * 4000), 'UTC')
FROM
(
    SELECT
        number AS _n,
        cityHash64({{seed:UInt64}}, number) AS _h,
        cityHash64({{seed:UInt64}}, 'span') AS _seed_mix,
        -- the row's hour (rows are in time order at hour granularity), then a
        -- uniform instant inside the part of that hour that is in the range
        _hour_of_slot[1 + intDiv(number * length(_hour_of_slot), {{total:UInt64}})] AS _hour,
        greatest(_start_ns, _h0_ns + _hour * _hour_ns) AS _lo,
        least(_end_ns, _h0_ns + (_hour + 1) * _hour_ns) AS _hi,
        _lo + toInt64(_u(0) * (_hi - _lo)) AS _ts_ns,
        _u(3) >= {{no_profile_share:Float64}} AS _has_profile,
        least({{profiles:UInt32}}, toUInt32(floor(pow({{profiles:UInt32}} + 1, _u(4))))) AS _profile,
        intHash64(_h + 5) % length({{other_services:Array(String)}}) AS _other,
        if(_has_profile, _profile_table.3[_profile],
           least(_model_count, toUInt32(floor(pow(_model_count + 1, _u(6)))))) AS _model,
        {{capabilities:Array(String)}}[_model] AS _capability,
        _capability = 'Chat' AS _is_chat,
        _u(7) < {{anonymous_share:Float64}} AS _anonymous,
        least({{users:UInt32}}, toUInt32(floor(pow({{users:UInt32}} + 1, _u(8))))) AS _user,
        _u(9) >= {{failure_share:Float64}} AS _succeeded,
        1 + intHash64(_h + 10) % length({{error_types:Array(String)}}) AS _error,
        multiIf(NOT _has_profile, '', _u(11) < 0.55, 'prompt', _u(11) < 0.9, 'agent', '') AS _feature_type,
        _feature_type != '' AND _u(12) < 0.7 AS _has_entity,
        -- two standard normals (Box-Muller) for log-normal token counts and durations
        sqrt(-2 * log(1 - _u(26))) AS _r1,
        _r1 * cos(2 * pi() * _u(27)) AS _z1,
        _r1 * sin(2 * pi() * _u(27)) AS _z2,
        sqrt(-2 * log(1 - _u(28))) * cos(2 * pi() * _u(29)) AS _z3,
        if(NOT _succeeded, 0,
           if(_is_chat, least(200000, toUInt64(exp(6.5 + 1.1 * _z1)) + 1), least(8191, toUInt64(exp(4.8 + 1.0 * _z1)) + 1))) AS _input,
        if(_succeeded AND _is_chat, least(16000, toUInt64(exp(5.2 + 0.8 * _z2)) + 1), 0) AS _output,
        toUInt64(1000000 * multiIf(
            NOT _succeeded, if({{error_types:Array(String)}}[_error] LIKE '%Canceled%', 100000 + 100 * _u(13), 80 + 400 * _u(13)),
            _is_chat, 350 * exp(0.4 * _z3) + _output * 12 * exp(0.3 * _z2),
            60 * exp(0.5 * _z3) + _input * 0.02)) AS _duration_ns
    FROM numbers_mt({{offset:UInt64}}, {{count:UInt64}})
)
""".format(columns=", ".join(COLUMNS))


def _expand_uniforms(sql: str) -> str:
    """`_u(k)`: the k-th uniform of a row, from a bijective mix of its hash."""
    return re.sub(r"_u\((\d+)\)", r"(intHash64(_h + \1) / 18446744073709551616.)", sql)


INSERT_SQL = _expand_uniforms(_INSERT)

# Measured on 2 cores: without these the insert runs on one thread (a table
# with a materialized view gets one insert stream unless views may run in
# parallel) and spends a third of its time in the collapsing engine's
# on-insert merge, which has nothing to collapse in fresh unique rows.
INSERT_SETTINGS: dict[str, int] = {
    "max_insert_threads": max(2, os.cpu_count() or 2),
    "parallel_view_processing": 1,
    "optimize_on_insert": 0,
}

# Hour-table resolution: each hour gets about SLOTS / hours row-number slots.
SLOTS = 1 << 22


def parameters(*, operations: int, days: int, seed: int, end: datetime) -> dict[str, object]:
    """Everything the statement needs except the batch's offset and count."""
    end_ns = int(end.timestamp()) * 10**9 + end.microsecond * 1000
    return {
        "seed": seed,
        "total": operations,
        "start_ns": end_ns - days * 86_400 * 10**9,
        "end_ns": end_ns,
        "slots": max(SLOTS, days * 24 * 64),
        "hourly": list(HOURLY_WEIGHTS),
        "weekly": list(WEEKDAY_WEIGHTS),
        "growth": GROWTH,
        "profiles": PROFILES,
        "users": USERS,
        "purposes": [p for p, _ in PURPOSES],
        "purpose_capabilities": [c for _, c in PURPOSES],
        "first_names": list(FIRST_NAMES),
        "last_names": list(LAST_NAMES),
        "prompts": list(PROMPTS),
        "agents": list(AGENTS),
        "other_services": [s for s, _, _ in OTHER_SERVICES],
        "other_scopes": [s for _, s, _ in OTHER_SERVICES],
        "other_scope_versions": [v for _, _, v in OTHER_SERVICES],
        "providers": [m[0] for m in MODELS],
        "providers_raw": [m[1] for m in MODELS],
        "models": [m[2] for m in MODELS],
        "response_models": [m[3] for m in MODELS],
        "capabilities": [m[4] for m in MODELS],
        "servers": [m[5] for m in MODELS],
        "reasoning": [int(m[6]) for m in MODELS],
        "error_types": [e for e, _ in ERRORS],
        "error_messages": [m for _, m in ERRORS],
        "anonymous_share": ANONYMOUS_SHARE,
        "no_profile_share": NO_PROFILE_SHARE,
        "failure_share": FAILURE_SHARE,
    }


def generate(
    database: Database,
    *,
    operations: int,
    days: int,
    seed: int = 1,
    end: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """Write `operations` synthetic operations over the `days` days before `end`; returns the count."""
    if operations <= 0 or days <= 0:
        raise ValueError("operations and days must be positive")
    end = end or datetime.now(UTC)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    base = parameters(operations=operations, days=days, seed=seed, end=end)
    client = database.client()
    started = time.perf_counter()
    for offset in range(0, operations, batch_rows):
        count = min(batch_rows, operations - offset)
        client.command(INSERT_SQL, parameters={**base, "offset": offset, "count": count}, settings=INSERT_SETTINGS)
        elapsed = time.perf_counter() - started
        log.info("synthetic: %d/%d rows, %.0f rows/s", offset + count, operations, (offset + count) / elapsed)
    return operations

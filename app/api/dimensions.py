"""The breakdown dimensions, defined once: routes, SQL and OpenAPI text all come from here.

`rollup` is the `usage_hourly.dimension` value; `key_sql` and `name_sql` compute
the same key and name over raw `operations` rows as the materialized view in
clickhouse/migrations/0002_usage_hourly.sql does (the queries read raw rows at
the edges of a range). A new dimension is a new entry here plus a new element
in that view's array.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_NAME = "''"


@dataclass(frozen=True)
class Dimension:
    rollup: str
    key_sql: str
    unknown_label: str
    path: str
    alias_path: str
    operation_id: str
    description: str
    name_sql: str = NO_NAME

    @property
    def has_name(self) -> bool:
        return self.name_sql != NO_NAME


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(
        rollup="provider",
        key_sql="toString(provider)",
        unknown_label="Unknown Provider",
        path="usage-by-provider",
        alias_path="breakdown/provider",
        operation_id="getUsageBreakdownByProvider",
        description="Requests and tokens per provider id (e.g. `openai`); `dimensionName` is always null.",
    ),
    Dimension(
        rollup="model",
        key_sql="if(request_model != '', toString(request_model), toString(response_model))",
        unknown_label="Unknown Model",
        path="usage-by-model",
        alias_path="breakdown/model",
        operation_id="getUsageBreakdownByModel",
        description=(
            "Requests and tokens per model id alone (e.g. `gpt-4o`): the requested model, "
            "else the response model; `dimensionName` is always null."
        ),
    ),
    Dimension(
        rollup="profile",
        key_sql="toString(profile_id)",
        name_sql="toString(profile_alias)",
        unknown_label="Unknown Profile",
        path="usage-by-profile",
        alias_path="breakdown/profile",
        operation_id="getUsageBreakdownByProfile",
        description="Requests and tokens per Umbraco.AI profile id; `dimensionName` is the profile alias.",
    ),
    Dimension(
        rollup="user",
        key_sql="toString(user_id)",
        name_sql="toString(user_name)",
        unknown_label="Anonymous",
        path="usage-by-user",
        alias_path="breakdown/user",
        operation_id="getUsageBreakdownByUser",
        description="Requests and tokens per user id; `dimensionName` is the user name, or null.",
    ),
)

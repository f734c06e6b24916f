"""The OpenAPI document at /openapi.json and Swagger UI at /docs, served with no internet.

Swagger UI's files come from the swagger-ui-bundle package and are served by
this service under /docs/assets/, so the page renders where no CDN can be
reached (the backoffice of an intranet, CI).
"""

from __future__ import annotations

from collections.abc import Iterable

import swagger_ui_bundle
from flask import Blueprint, Flask, Response, send_from_directory

from app.api.problems import ProblemApi

ASSETS_URL = "/docs/assets/"
BEARER_SCHEME = "bearerAuth"

DESCRIPTION = """\
AI usage analytics compatible with Umbraco.AI's management API: summary, time
series and breakdowns by provider, model, profile and user, plus the raw
operations as audit logs.

Every route takes `Authorization: Bearer <key>` with a key from
`AI_USAGE_API_KEYS` (open when none is configured: this document then marks
the key optional) or, when `AI_USAGE_UMBRACO_URL` is set, an Umbraco
backoffice user's own access token (the user needs the `ai` section). Errors are
`application/problem+json`. Timestamps are UTC, written
`2024-01-01T00:00:00.000Z`.
"""


def configure(app: Flask, keys_required: bool = True) -> None:
    """flask-smorest's settings: OpenAPI 3.0 (what the bundled Swagger UI renders), docs paths.

    The document describes this instance: with analytics keys configured a
    bearer key is required; without, the API is open and `security` says a
    key is optional (the empty requirement `{}`), so that a client or a
    fuzzer reading the document expects what the service does.
    """
    security = [{BEARER_SCHEME: []}] if keys_required else [{BEARER_SCHEME: []}, {}]
    app.config.update(
        API_TITLE="ai-usage analytics API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=ASSETS_URL,
        # No call-outs: the online validator badge would fetch from the internet.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None, "tryItOutEnabled": False},
        API_SPEC_OPTIONS={
            "info": {"description": DESCRIPTION},
            "security": security,
        },
    )


def describe_security(api: ProblemApi, umbraco_sections: Iterable[str] | None = None) -> None:
    """The bearer scheme; with Umbraco token mode on (`umbraco_sections`), saying which tokens pass."""
    description = "A key from AI_USAGE_API_KEYS."
    if umbraco_sections is not None:
        sections = " or ".join(f"`{alias}`" for alias in umbraco_sections)
        description = (
            "A key from AI_USAGE_API_KEYS, or an Umbraco backoffice user's access token: the service asks the "
            f"Umbraco site (AI_USAGE_UMBRACO_URL) who the user is and admits users with the {sections} section. "
            "401: not a valid token; 403: the section is missing; 503: Umbraco could not be asked."
        )
    api.spec.components.security_scheme(
        BEARER_SCHEME,
        {"type": "http", "scheme": "bearer", "description": description},
    )


def assets_blueprint() -> Blueprint:
    blueprint = Blueprint("swagger-ui-assets", __name__)

    @blueprint.get(f"{ASSETS_URL}<path:filename>")
    def swagger_ui_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600)

    return blueprint

"""flask-smorest with the service's one error shape (app/errors.py), in responses and in the OpenAPI document.

flask-smorest registers its own app-wide HTTPException handler with a different
body; `ProblemApi` replaces that body with the problem shape, so unknown routes,
wrong methods and invalid parameters all answer alike. Invalid parameters are
400 (webargs' default is 422), with a `detail` naming each parameter.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any

from flask import Response
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from app.errors import PROBLEM_JSON, from_http_exception, problem

API_BASE = "/umbraco/ai/management/api/v1"
# Errors every API route can answer, as references to the responses below.
ERROR_RESPONSES = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 503: "SERVICE_UNAVAILABLE"}


class ProblemSchema(Schema):
    """RFC 9457 problem details, as app/errors.py writes them."""

    status = fields.Integer(required=True, metadata={"description": "HTTP status code."})
    title = fields.String(required=True, metadata={"description": "HTTP status phrase."})
    detail = fields.String(metadata={"description": "What went wrong, naming the parameter at fault."})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Messages per parameter, for invalid parameters."},
    )


class ArgumentsParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()

    def common_errors(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Documents the errors every API route can answer (auth, storage down)."""
        for status, response in ERROR_RESPONSES.items():
            view = self.alt_response(status, response=response)(view)
        return view


def parameter_messages(messages: dict[str, Any]) -> dict[str, list[str]]:
    """webargs' {location: {parameter: [message]}} as {parameter: [message]}."""
    flat: dict[str, list[str]] = {}
    for by_parameter in messages.values():
        for parameter, texts in by_parameter.items():
            flat.setdefault(parameter, []).extend(texts if isinstance(texts, list) else [str(texts)])
    return flat


def _sentence(parameter: str, message: str) -> str:
    # Messages written here already quote the parameter; marshmallow's own do not.
    return message if f"'{parameter}'" in message or parameter == "_schema" else f"'{parameter}': {message}"


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        if not isinstance(messages, dict):
            return from_http_exception(error)
        errors = parameter_messages(messages)
        detail = "; ".join(_sentence(name, text) for name, texts in errors.items() for text in texts)
        return problem(error.code or 400, error.name, detail, errors, data.get("headers"))

    def _register_responses(self) -> None:
        """Every error response in the document is a problem (the base class says application/json)."""
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response: dict[str, Any] = {"description": status.phrase, "schema": self.ERROR_SCHEMA}
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Any other error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)

"""One error shape for the whole API: `{"error": "...", "fields": {...}}`,
the shape the bars endpoint always had. Field names come first in `error`
so a client log line says what to fix."""

from __future__ import annotations

import json

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaError
from ninja.parser import Parser

from api.auth import RateLimited
from core.storable import unstorable_reason

# Where ninja puts a value in an error's `loc` before the field path.
_SOURCES = {"body", "query", "path", "header", "cookie", "form"}


class JsonParser(Parser):
    """Keeps the reason a body is not JSON: ninja turns any parse failure
    into a bare "Cannot parse request body" outside DEBUG. Text PostgreSQL
    cannot store (NUL, lone surrogates) is refused here, before any query."""

    def parse_body(self, request):
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            where = (
                f" at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            request.api_body_error = f"Malformed JSON body{where}: {reason}."
            raise
        reason = unstorable_reason(data)
        if reason:
            request.api_body_error = f"The JSON body contains {reason}."
            raise ValueError(request.api_body_error)
        return data


def _field(loc) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
        # A body schema adds its parameter name (e.g. "payload") first.
        if len(parts) > 1 and loc[0] == "body":
            parts = parts[1:]
    return ".".join(parts) or "body"


def _response(api: NinjaAPI, request, status: int, error: str, fields=None):
    body = {"error": error}
    if fields:
        body["fields"] = fields
    return api.create_response(request, body, status=status)


def install(api: NinjaAPI) -> None:
    def schema_error(request, exc: SchemaError):
        fields: dict[str, list[str]] = {}
        for item in exc.errors:
            fields.setdefault(_field(item.get("loc", ())), []).append(item["msg"])
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
        return _response(api, request, 400, text, fields)

    def django_error(request, exc: ValidationError):
        if hasattr(exc, "error_dict"):
            fields = {k: list(v) for k, v in exc.message_dict.items()}
        else:
            fields = {"__all__": exc.messages}
        text = "; ".join(
            " ".join(v) if k == "__all__" else f"{k}: {' '.join(v)}"
            for k, v in fields.items()
        )
        return _response(api, request, 400, text, fields)

    def http_error(request, exc: HttpError):
        message = str(exc)
        if exc.status_code == 400 and getattr(request, "api_body_error", None):
            message = request.api_body_error
        if isinstance(exc, AuthenticationError) and message == "Unauthorized":
            # Neither a token nor a session: what the bars endpoint always said.
            message = "authentication required"
        response = _response(api, request, exc.status_code, message)
        if isinstance(exc, AuthenticationError):
            response["WWW-Authenticate"] = 'Bearer realm="tapeline"'
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def not_found(request, exc):
        message = str(exc) if isinstance(exc, Http404) and str(exc) else "Not found."
        return _response(api, request, 404, message)

    api.add_exception_handler(SchemaError, schema_error)
    api.add_exception_handler(ValidationError, django_error)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(ObjectDoesNotExist, not_found)

"""The OpenAPI 3.0 document of ``/api/v1``, kept next to the code it describes.

tests/test_gate_api.py checks the running server against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from monitor import __version__

MAX_PAGE = 1000  # lines per page of GET /api/v1/lines (monitor/http/gate.py uses it)
CURSOR_PATTERN = "^(?:[0-9a-f]{2})*$"

_NULLABLE_STRING = {"type": "string", "nullable": True}

_LINE = {
    "type": "object",
    "required": ["account", "line_id", "phone_number", "status", "severity", "since",
                 "doc_url", "line_type", "service_status", "flagged", "flapping", "labels",
                 "advice", "last_audit"],
    "additionalProperties": False,
    "properties": {
        "account": {"type": "string"},
        "line_id": {"type": "string"},
        "phone_number": {"type": "string", "description": "E.164"},
        "status": {"type": "string", "description":
                   "Reputation: HEALTHY, WATCH (the monitor's early warning: HEALTHY per "
                   "Linq, chats souring), AT_RISK, CRITICAL, or an undocumented value "
                   "verbatim"},
        "severity": {"type": "number", "minimum": 0, "maximum": 3, "description":
                     "0 HEALTHY, 0.5 WATCH, 1 AT_RISK, 2 CRITICAL, 3 undocumented status"},
        "since": {"type": "string", "format": "date-time",
                  "description": "When the current status was first observed"},
        "doc_url": {**_NULLABLE_STRING, "description": "Linq's guide link, as the API gave it"},
        "line_type": {**_NULLABLE_STRING, "description":
                      "iMessage or RCS (RCS and SMS only), as Linq's list reports it; "
                      "null until it does"},
        "service_status": {**_NULLABLE_STRING, "description":
                           "ACTIVE or FLAGGED from webhooks; null until one arrived"},
        "flagged": {"type": "boolean"},
        "flapping": {"type": "boolean"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "advice": {"type": "string", "enum": ["send", "slow_down", "pause"], "description":
                   "send: HEALTHY; slow_down: WATCH or AT_RISK; pause: CRITICAL, FLAGGED or "
                   "unknown"},
        "last_audit": {
            "type": "object", "nullable": True, "additionalProperties": False,
            "required": ["state", "started_at", "severity", "primary_driver", "top_action"],
            "properties": {
                "state": {"type": "string", "enum": ["pending", "complete", "error", "skipped"]},
                "started_at": {"type": "string", "format": "date-time"},
                "severity": _NULLABLE_STRING,
                "primary_driver": _NULLABLE_STRING,
                "top_action": _NULLABLE_STRING,
            },
        },
    },
}

_CHANGE = {
    "type": "object",
    "required": ["at", "kind", "from_status", "to_status", "doc_url", "source"],
    "additionalProperties": False,
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "kind": {"type": "string",
                 "enum": ["first_seen", "changed", "removed", "returned", "service"]},
        "from_status": _NULLABLE_STRING,
        "to_status": {"type": "string"},
        "doc_url": _NULLABLE_STRING,
        "source": {"type": "string", "enum": ["poll", "webhook", "chats"]},
    },
}

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

_LINE_KEY = {
    "name": "phone_or_id", "in": "path", "required": True,
    "description": "The line's E.164 phone number or its Linq id",
    "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9+_-]+$"},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


_NOT_FOUND = _json({"$ref": "#/components/schemas/Error"}, "No such line")


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Linq line reputation monitor: pre-send gate",
            "version": __version__,
            "description": "Read-only, served from memory. With [server] api_token_env set, "
                           "every call needs Authorization: Bearer <token>.",
        },
        "paths": {
            "/api/v1/lines": {"get": {
                "operationId": "listLines",
                "summary": "Every line in the accounts, optionally filtered",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string"},
                     "description": "A reputation status, or FLAGGED for flagged lines"},
                    {"name": "account", "in": "query", "required": False,
                     "schema": {"type": "string"}},
                    {"name": "label", "in": "query", "required": False,
                     "schema": {"type": "string"}, "description": "key=value, or key"},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                "default": MAX_PAGE},
                     "description": "Lines per page"},
                    {"name": "cursor", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                     "description": "The previous page's next_cursor: continue after it"},
                ],
                "responses": {
                    "200": _json({
                        "type": "object", "required": ["count", "lines", "next_cursor"],
                        "additionalProperties": False,
                        "properties": {
                            "count": {"type": "integer", "minimum": 0,
                                      "description": "Lines in this page"},
                            "lines": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/Line"}},
                            "next_cursor": {**_NULLABLE_STRING, "description":
                                            "Pass as cursor for the next page; null on "
                                            "the last one"},
                        },
                    }, "A page of the matching lines, by account and phone number"),
                    "400": _json({"$ref": "#/components/schemas/Error"},
                                 "A limit out of range, or a cursor this API did not give"),
                },
            }},
            "/api/v1/lines/{phone_or_id}": {"get": {
                "operationId": "getLine",
                "summary": "One line: may I send on it?",
                "parameters": [_LINE_KEY],
                "responses": {"200": _json({"$ref": "#/components/schemas/Line"}, "The line"),
                              "404": _NOT_FOUND},
            }},
            "/api/v1/lines/{phone_or_id}/history": {"get": {
                "operationId": "getLineHistory",
                "summary": "The line's recorded changes, newest first",
                "parameters": [_LINE_KEY],
                "responses": {
                    "200": _json({
                        "type": "object", "required": ["line_id", "phone_number", "changes"],
                        "additionalProperties": False,
                        "properties": {
                            "line_id": {"type": "string"},
                            "phone_number": {"type": "string"},
                            "changes": {"type": "array",
                                        "items": {"$ref": "#/components/schemas/Change"}},
                        },
                    }, "Changes, newest first (at most 500)"),
                    "404": _NOT_FOUND,
                    "503": _json({"$ref": "#/components/schemas/Error"},
                                 "The database is unavailable"),
                },
            }},
        },
        "components": {
            "schemas": {"Line": _LINE, "Change": _CHANGE, "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

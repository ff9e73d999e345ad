"""The OpenAPI 3.1 document of the API, made from its route table: the paths from the
operations, the schemas from the same pydantic models that check requests and write
answers (``models_json_schema``, one set of definitions for them all)."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..archive import MAX_ISSUE_ID
from .problems import MEDIA_TYPE, Problem
from .routing import JSON_TYPE, MAX_PATH_TEXT, PREFIX, Operation

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "token"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def schemas(operations: Sequence[Operation]) -> dict[str, Any]:
    """Every model's schema, by name; the models refer to each other by ``$ref``."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for op in operations:
        wanted[(op.answer, "serialization")] = None
        for model in (op.query, op.body):
            if model is not None:
                wanted[(model, "validation")] = None
    _, top = models_json_schema(list(wanted), ref_template=REF)
    return dict(top.get("$defs", {}))


def document(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    defs = schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = operation(op, defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "A token from `newsletter tokens create NAME --role editor`.",
            }},
        },
    }


DESCRIPTION = (
    "Everything an editor does, for scripts. Every error is a problem (RFC 9457, "
    "application/problem+json); lists are read a page at a time with `cursor`."
)


def operation(op: Operation, defs: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": list(op.tags),
        "security": [] if op.role == "public" else [{SECURITY_SCHEME: []}],
        "parameters": [*path_parameters(op), *query_parameters(op, defs)],
        "responses": responses(op),
    }
    if op.description:
        found["description"] = op.description
    if op.role == "admin":
        found["description"] = (op.description + " Needs an admin's token.").strip()
    if op.body is not None:
        found["requestBody"] = {
            "required": False, "content": {JSON_TYPE: {"schema": ref(op.body)}},
        }
    return found


def path_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_TEXT}
         if name in op.text_ids else
         {"type": "integer", "minimum": 1, "maximum": MAX_ISSUE_ID}}
        for name in op.path_ids
    ]


def query_parameters(op: Operation, defs: dict[str, Any]) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    model = defs[op.query.__name__]
    required = set(model.get("required", ()))
    parameters = []
    for name, schema in model["properties"].items():
        schema = dict(schema)
        found = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in schema:
            found["description"] = schema.pop("description")
        parameters.append(found)
    return parameters


def responses(op: Operation) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for status in (op.status, *op.also):
        found[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {op.media_type: {"schema": ref(op.answer)}},
        }
        if op.media_type != JSON_TYPE:
            found[str(status)]["headers"] = {"Content-Disposition": {
                "description": "attachment, with a file name.", "schema": {"type": "string"}}}
        if status == 201:
            found[str(status)]["headers"] = {
                "Location": {"description": "The new resource.", "schema": {"type": "string"}}
            }
    for status in op.problem_statuses():
        found[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": ref(Problem)}},
        }
        if status == 401:
            found["401"]["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
    return found

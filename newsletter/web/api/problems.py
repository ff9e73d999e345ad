"""One shape for every error the API answers: problem details (RFC 9457), sent as
``application/problem+json``, whatever went wrong and wherever: a refused token, an unknown
route, a body that is too large or not JSON, a field that is wrong, a move the issue state
machine refuses, the pre-send checks' findings.

The type is always ``about:blank``, so the status says what kind of problem it is and the
title is the status's name; ``detail`` says what happened in words, and the extension
members say more where a program can act on it: ``errors`` names each field refused,
``findings`` lists what the pre-send checks found.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"

Where = Literal["body", "query", "path", "header"]


class FieldProblem(BaseModel):
    """One refused value: where it was, its name (``article_ids.0`` for an item of a
    list), and what is wrong with it."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    field: str
    where: Where = Field(alias="in")
    message: str

    @classmethod
    def of(cls, field: str, where: Where, message: str) -> FieldProblem:
        return cls.model_validate({"field": field, "in": where, "message": message})


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(default="about:blank", description="Always about:blank: the status says it.")
    title: str = Field(description="The HTTP status's name.")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong, in a sentence meant for a person.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="400 and 422: each value refused, and why."
    )
    findings: list[str] | None = Field(
        default=None, description="409 from the pre-send checks: what they found."
    )


class ApiProblem(Exception):
    """Raised anywhere below a route to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldProblem] | None = None,
        findings: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors,
            findings=findings,
        )
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.problem.status

    def response(self) -> Response:
        return problem_response(self.problem, self.headers)


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        problem.model_dump_json(exclude_none=True), status_code=problem.status,
        headers=headers, media_type=MEDIA_TYPE,
    )


def invalid(
    field: str, message: str, *, where: Where = "body", status: int = 422
) -> ApiProblem:
    """A problem naming one field: 422 for a value refused, 400 for a malformed request."""
    named = message.startswith(field + " ")  # the library's messages often name it first
    return ApiProblem(
        status, message if named else f"{field}: {message}",
        errors=[FieldProblem.of(field, where, message)],
    )

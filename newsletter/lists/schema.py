"""The shape of ``subscribers/publication.toml``: every table, key, type and allowed value.

Validation is declarative (pydantic models with unknown keys forbidden, no type coercion),
so a typo such as ``shedule`` or ``max_articles = "20"`` is reported rather than ignored.
Rules that involve more than one key, or the files on disk, live in ``config.py``.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ..render.message import header_value_problem
from .address import sendable_address

IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9_-]*")
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def _text(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty")
    return stripped


def _fit_for_headers(value: str) -> str:
    """A value every message carries in a header (the From name, the title in List-Id)."""
    problem = header_value_problem(value)
    if problem:
        raise ValueError(f"{problem}, which an email header cannot carry")
    return value


def identifier_problem(value: str) -> str:
    """What is wrong with ``value`` as a list or source id ("" when nothing)."""
    if IDENTIFIER.fullmatch(value):
        return ""
    return f"{value!r} is not a valid id: use lowercase letters, digits, '-' and '_'"


def _identifier(value: str) -> str:
    problem = identifier_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _address(value: str) -> str:
    try:
        return sendable_address(value.strip())
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from exc


def _optional_address(value: str) -> str:
    return _address(value) if value.strip() else ""


def _http_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ValueError(f"{value!r} is not an http:// or https:// address")
    return url


def _cron(value: str) -> str:
    # Here, not above: a publication whose lists have no schedule loads no APScheduler.
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a cron expression (minute hour day month weekday): {exc}"
        ) from exc
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{value!r} is not an IANA time zone name (such as 'Europe/London')"
        ) from exc
    return value


def _language(value: str) -> str:
    if not LANGUAGE_TAG.fullmatch(value):
        raise ValueError(f"{value!r} is not a language tag (such as 'en' or 'en-GB')")
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_text)]
HeaderText = Annotated[str, AfterValidator(_text), AfterValidator(_fit_for_headers)]
HeaderName = Annotated[str, AfterValidator(_fit_for_headers)]
Identifier = Annotated[str, AfterValidator(_identifier)]
Address = Annotated[str, AfterValidator(_address)]
OptionalAddress = Annotated[str, AfterValidator(_optional_address)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Language = Annotated[str, AfterValidator(_language)]
FileNames = Annotated[list[Text], BeforeValidator(_one_or_many), Field(min_length=1)]


class Table(BaseModel):
    """A TOML table: unknown keys are errors and values keep the type TOML gave them."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PublicationTable(Table):
    name: Text
    base_url: HttpUrl
    from_email: Address
    from_name: HeaderName = ""
    reply_to: OptionalAddress = ""
    postal_address: Text
    language: Language = "en"
    unsubscribe_mailto: OptionalAddress = ""
    description: str = ""


class SourceTable(Table):
    type: Literal["folder", "feed"]
    path: str = ""
    url: str = ""
    lookback_days: Annotated[int, Field(gt=0)] | None = None
    allow_private_network: bool = False


class ListTable(Table):
    title: HeaderText
    description: str = ""
    members: FileNames
    sources: Annotated[list[Identifier], BeforeValidator(_one_or_many), Field(min_length=1)]
    cadence: Literal["digest", "instant"] = "digest"
    schedule: Cron | None = None
    timezone: TimeZoneName = "UTC"
    approval: Literal["auto", "editor"] = "auto"
    template: Literal["digest", "article"] | None = None
    max_articles: Annotated[int, Field(gt=0, le=500)] = 20
    from_email: OptionalAddress = ""
    from_name: HeaderName = ""
    reply_to: OptionalAddress = ""
    #: The members file confirmed public sign-ups are appended to; none: no public sign-ups.
    signups: Text | None = None
    #: Whether a confirmed reader also gets a welcome email.
    welcome: bool = False


class PublicationFile(Table):
    """The top level: which tables there are. Each table is then checked on its own."""

    publication: dict[str, Any]
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    lists: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]


def table_keys(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    """The keys allowed in the table that ``loc`` (a key's location) belongs to."""
    parent = loc[:-1]
    model: type[Table] = PublicationFile
    if parent[:1] == ("publication",):
        model = PublicationTable
    elif len(parent) == 2 and parent[0] == "sources":
        model = SourceTable
    elif len(parent) == 2 and parent[0] == "lists":
        model = ListTable
    return tuple(model.model_fields)

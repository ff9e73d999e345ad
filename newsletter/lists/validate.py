"""Checking a parsed publication file table by table, so one run reports every mistake.

Each table is validated on its own (a bad source does not hide a bad list), then the rules
that span tables or touch the disk are applied to the tables that passed. Problems come
back as ``Finding``s: the location of the key (as a tuple) and what is wrong with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pydantic import ValidationError

from ..models import Cadence
from .schema import (
    ListTable,
    PublicationFile,
    PublicationTable,
    SourceTable,
    Table,
    identifier_problem,
    table_keys,
)

Location = tuple[str | int, ...]
Finding = tuple[Location, str]
T = TypeVar("T", bound=Table)


@dataclass(slots=True)
class Tables:
    """The tables that passed validation, plus every source id declared (valid or not)."""

    publication: PublicationTable | None = None
    sources: dict[str, SourceTable] = field(default_factory=dict)
    lists: dict[str, ListTable] = field(default_factory=dict)
    source_ids: tuple[str, ...] = ()


def validate_document(
    document: Mapping[str, Any], subscribers: Path, home: Path
) -> tuple[Tables, list[Finding]]:
    """The valid tables of ``document`` and everything wrong with it."""
    findings: list[Finding] = []
    _validate(PublicationFile, document, (), findings)
    raw_publication = document.get("publication")
    tables = Tables(
        publication=(
            _validate(PublicationTable, raw_publication, ("publication",), findings)
            if isinstance(raw_publication, dict)
            else None
        ),
        sources=_validate_group(document, "sources", SourceTable, findings),
        lists=_validate_group(document, "lists", ListTable, findings),
        source_ids=tuple(_tables_in(document, "sources")),
    )
    findings += _cross_checks(tables, subscribers, home)
    return tables, findings


def _validate_group(
    document: Mapping[str, Any], kind: str, model: type[T], findings: list[Finding]
) -> dict[str, T]:
    """The valid tables of one group (``[lists.*]``, ``[sources.*]``) by id."""
    valid: dict[str, T] = {}
    for table_id, raw in _tables_in(document, kind).items():
        loc = (kind, table_id)
        if _check_id(loc, findings) and (table := _validate(model, raw, loc, findings)):
            valid[table_id] = table
    return valid


def _tables_in(document: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    group = document.get(kind)
    if not isinstance(group, dict):
        return {}
    return {key: value for key, value in group.items() if isinstance(value, dict)}


def _check_id(loc: tuple[str, str], findings: list[Finding]) -> bool:
    problem = identifier_problem(loc[1])
    if problem:
        findings.append((loc, problem))
    return not problem


def _validate(model: type[T], raw: Any, loc: Location, findings: list[Finding]) -> T | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            where = loc + tuple(error["loc"])
            findings.append((where, _reason(where, error)))
        return None


def _reason(loc: Location, error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message: str = error["msg"]
    shown = repr(error["input"])
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{message[0].lower()}{message[1:]}, not {shown}"


def _unknown_key(loc: Location) -> str:
    known = table_keys(loc)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}allowed: {', '.join(known)})"


def _cross_checks(tables: Tables, subscribers: Path, home: Path) -> Iterator[Finding]:
    for source_id, source in tables.sources.items():
        yield from _check_source(("sources", source_id), source, home)
    for list_id, table in tables.lists.items():
        loc = ("lists", list_id)
        yield from _check_list_sources(loc, table, tables.source_ids)
        yield from _check_members(loc, table, subscribers)
        yield from _check_signups(loc, table, subscribers)
        if table.cadence == Cadence.INSTANT and table.schedule is not None:
            yield (*loc, "schedule"), "only digest lists have a schedule (this list is instant)"


def _check_source(loc: tuple[str, str], source: SourceTable, home: Path) -> Iterator[Finding]:
    wanted, unwanted = ("path", "url") if source.type == "folder" else ("url", "path")
    if not getattr(source, wanted).strip():
        yield (*loc, wanted), f"required for {source.type} sources"
    if getattr(source, unwanted):
        yield (*loc, unwanted), f"{source.type} sources take {wanted}, not {unwanted}"
    if source.type == "feed" and source.url and not re.match(r"https?://\S+$", source.url):
        yield (*loc, "url"), f"{source.url!r} is not an http:// or https:// address"
    if source.type == "folder" and source.path.strip() and not (home / source.path).is_dir():
        yield (*loc, "path"), f"folder {home / source.path} does not exist"
    if source.type == "folder" and source.allow_private_network:
        yield (*loc, "allow_private_network"), "only feed sources fetch over the network"


def _check_list_sources(
    loc: tuple[str, str], table: ListTable, declared: tuple[str, ...]
) -> Iterator[Finding]:
    for source_id in table.sources:
        if source_id not in declared:
            known = ", ".join(declared) or "none declared"
            yield (*loc, "sources"), f"unknown source {source_id!r} (sources: {known})"


def _check_members(loc: tuple[str, str], table: ListTable, folder: Path) -> Iterator[Finding]:
    where = (*loc, "members")
    if len(set(table.members)) != len(table.members):
        yield where, "the same file is named twice"
    for name in table.members:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            yield where, f"{name!r} must be a file name inside {folder}"
        elif not (folder / relative).is_file():
            yield (
                where,
                (
                    f"members file {folder / relative} not found "
                    "(create it with a header row such as: email,name)"
                ),
            )


def _check_signups(loc: tuple[str, str], table: ListTable, folder: Path) -> Iterator[Finding]:
    """The sign-up file may not exist yet (the first confirmed reader creates it), but it
    must be a plain name inside the folder, so no reader's request can write elsewhere."""
    if table.signups is None:
        return
    name = table.signups.strip()
    relative = PurePosixPath(name)
    if relative.is_absolute() or len(relative.parts) != 1 or relative.name in ("", ".", ".."):
        yield (*loc, "signups"), f"{name!r} must be a file name inside {folder}"
    elif not name.endswith(".csv"):
        yield (*loc, "signups"), f"{name!r} must be a .csv file"
    elif (folder / name).exists() and not (folder / name).is_file():
        yield (*loc, "signups"), f"{folder / name} is not a file"

"""Reading ``subscribers/publication.toml`` into the publication, its sources and its lists.

Every problem is reported as ``file:line: key: reason``. The whole file is checked before
anything is raised, so one run shows every mistake; ``ConfigFileError`` carries them all.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ..config import Settings
from ..errors import ConfigError, ListError, NotFoundError
from ..models import Approval, Cadence, MailingList, Publication
from ..sources import SourceSpec
from .schema import ListTable, PublicationTable, SourceTable
from .validate import Tables, validate_document

FILE_NAME = "publication.toml"

_Made = TypeVar("_Made")

log = logging.getLogger(__name__)

_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_TABLE_LINE = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


class ConfigFileError(ListError):
    """Every problem found in the publication file; ``str()`` lists them one per line."""

    def __init__(self, problems: Sequence[ListError]) -> None:
        first = problems[0]
        super().__init__(first.path, first.line, first.reason)
        self.problems = tuple(problems)
        self.args = ("\n".join(str(p) for p in self.problems),)


@dataclass(frozen=True, slots=True)
class PublicationConfig:
    """The publication file, read and checked: who publishes, from where, to which lists."""

    path: Path
    publication: Publication
    sources: Mapping[str, SourceSpec]
    lists: Mapping[str, MailingList]

    @property
    def subscribers_dir(self) -> Path:
        return self.path.parent

    def list(self, list_id: str) -> MailingList:
        try:
            return self.lists[list_id]
        except KeyError:
            known = ", ".join(sorted(self.lists)) or "none"
            raise NotFoundError(f"no list {list_id!r} in {self.path} (lists: {known})") from None

    def member_paths(self, list_id: str) -> tuple[Path, ...]:
        """The list's member CSV files, in the order they are read: its ``members``, then its
        sign-up file (when it has one, ``members`` does not name it already, and it exists).
        The first confirmed reader creates the sign-up file; until then the list reads as
        if it were not there, an empty file rather than a missing one."""
        return tuple(p for p in self.declared_member_paths(list_id) if self._present(p, list_id))

    def declared_member_paths(self, list_id: str) -> tuple[Path, ...]:
        """The list's member CSV files, the sign-up file included even before it exists
        (what no other file may be written over: an export, for example)."""
        mailing_list = self.list(list_id)
        names = list(mailing_list.members_files)
        if mailing_list.signups_file and mailing_list.signups_file not in names:
            names.append(mailing_list.signups_file)
        return tuple(self.subscribers_dir / name for name in names)

    def _present(self, path: Path, list_id: str) -> bool:
        return path.name != self.list(list_id).signups_file or path.exists()

    def signup_path(self, list_id: str) -> Path | None:
        """The file confirmed sign-ups of ``list_id`` are appended to, if it takes any."""
        name = self.list(list_id).signups_file
        return self.subscribers_dir / name if name else None

    def lists_reading(self, path: Path) -> tuple[str, ...]:
        """The ids of every list whose members come (partly) from ``path``."""
        return tuple(lid for lid in self.lists if path in self.member_paths(lid))


#: What tells one version of a file from the next: its size, the time of its last change
#: (nanoseconds) and its inode (a file renamed into place is another); None if missing.
FileStamp = tuple[int, int, int] | None


def file_stamp(path: Path) -> FileStamp:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino


def load_config(settings: Settings) -> PublicationConfig:
    """Read and check ``subscribers/publication.toml`` of the publication in ``settings.home``."""
    return load_config_file(settings.subscribers_dir / FILE_NAME, settings.home)


class PublicationFile:
    """The publication file as it is now, read again only when its stamp moved: a process
    that lives for days (the web app, the reader mail's sender) sees an admin's edit."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._read: tuple[FileStamp, PublicationConfig] | None = None
        #: The stamp of a version that did not read (in a tuple: a missing file's is None).
        self._broken: tuple[FileStamp] | None = None

    @property
    def path(self) -> Path:
        return self._settings.subscribers_dir / FILE_NAME

    def __call__(self) -> PublicationConfig:
        stamp = file_stamp(self.path)
        if self._read is None or self._read[0] != stamp:
            self._read = (stamp, load_config(self._settings))
        return self._read[1]

    def last_good(self) -> PublicationConfig:
        """The file as it is now or, while an edit leaves it broken, as it last read
        cleanly: a reader's sign-up, confirmation or unsubscribe must not fail on an
        admin's unfinished edit. Each broken version is read and logged once. Raises only
        when the file never read cleanly in this process."""
        if self._read is not None and self._broken == (file_stamp(self.path),):
            return self._read[1]
        try:
            return self()
        except ConfigError as exc:
            if self._read is None:
                raise
            self._broken = (file_stamp(self.path),)
            log.error("the publication file does not read; the version read before is used "
                      "until it is fixed: %s", exc)
            return self._read[1]


class MadeFromPublication(Generic[_Made]):
    """What ``make`` makes of the publication file as it last read cleanly
    (``PublicationFile.last_good``), made again only once the file changed."""

    def __init__(
        self, publication: PublicationFile, make: Callable[[PublicationConfig], _Made]
    ) -> None:
        self._publication = publication
        self._make = make
        self._made: tuple[PublicationConfig, _Made] | None = None

    def __call__(self) -> _Made:
        config = self._publication.last_good()
        made = self._made
        if made is None or made[0] is not config:
            made = self._made = (config, self._make(config))
        return made[1]


def load_config_file(path: Path, home: Path) -> PublicationConfig:
    """Read and check the publication file at ``path``; relative folders are under ``home``."""
    text = _read_text(path)
    tables, findings = validate_document(_parse_toml(path, text), path.parent, home)
    if findings:
        lines = KeyLines(text)
        problems = [
            ListError(path, lines.line(loc), f"{_dotted(loc)}: {why}") for loc, why in findings
        ]
        raise ConfigFileError(sorted(problems, key=lambda p: p.line or 0))
    assert tables.publication is not None, "validation passed, so the table is there"
    return _build(path, home, tables.publication, tables)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; a publication declares its lists in subscribers/{FILE_NAME}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ListError(path, None, f"not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ListError(path, None, f"cannot read: {exc.strerror}") from exc


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is None:
            raise ListError(path, None, f"invalid TOML: {message}") from exc
        reason = f"invalid TOML: {message[: position.start()]} (column {position[2]})"
        raise ListError(path, int(position[1]), reason) from exc


class KeyLines:
    """Where each table and key was written; tomllib keeps no positions, so the text is scanned.

    Best effort: keys inside inline tables or multi-line values are not located, and a
    lookup then falls back to the enclosing table's line.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if header := _TABLE_LINE.match(line):
                table = _split_dotted(header[1])
                self._lines.setdefault(table, number)
            elif key := _KEY_LINE.match(line):
                self._lines.setdefault(table + _split_dotted(key[1]), number)

    def line(self, loc: Sequence[str | int]) -> int | None:
        parts = tuple(p for p in loc if isinstance(p, str) and p != "[key]")
        while parts:
            if parts in self._lines:
                return self._lines[parts]
            parts = parts[:-1]
        return None


def _split_dotted(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.findall(_PART, dotted))


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else part
    return text or "(top level)"


def _build(path: Path, home: Path, table: PublicationTable, tables: Tables) -> PublicationConfig:
    publication = _publication(table)
    sources = {sid: _source(sid, s, home, publication) for sid, s in tables.sources.items()}
    lists = {lid: _mailing_list(lid, list_table) for lid, list_table in tables.lists.items()}
    return PublicationConfig(
        path=path,
        publication=publication,
        sources=MappingProxyType(sources),
        lists=MappingProxyType(lists),
    )


def _publication(table: PublicationTable) -> Publication:
    return Publication(
        name=table.name,
        base_url=table.base_url,
        from_email=table.from_email,
        from_name=table.from_name.strip() or table.name,
        postal_address=table.postal_address,
        reply_to=table.reply_to,
        language=table.language,
        unsubscribe_mailto=table.unsubscribe_mailto,
        description=table.description.strip(),
    )


def _source(source_id: str, table: SourceTable, home: Path, pub: Publication) -> SourceSpec:
    if table.type == "feed":
        return SourceSpec(
            id=source_id,
            type=table.type,
            url=table.url.strip(),
            lookback_days=table.lookback_days,
            allow_private_network=table.allow_private_network,
        )
    # Folder articles have no URL of their own; links are made under the publication's site.
    folder = str(home / table.path.strip())
    return SourceSpec(
        source_id,
        table.type,
        path=folder,
        options={"base_url": pub.base_url},
        lookback_days=table.lookback_days,
    )


def _mailing_list(list_id: str, table: ListTable) -> MailingList:
    cadence = Cadence(table.cadence)
    default_template = "article" if cadence == Cadence.INSTANT else "digest"
    optional: dict[str, Any] = {"schedule": table.schedule} if table.schedule else {}
    return MailingList(
        id=list_id,
        title=table.title,
        members_files=tuple(table.members),
        sources=tuple(table.sources),
        cadence=cadence,
        timezone=table.timezone,
        approval=Approval(table.approval),
        template=table.template or default_template,
        description=table.description.strip(),
        from_email=table.from_email,
        from_name=table.from_name.strip(),
        reply_to=table.reply_to,
        max_articles=table.max_articles,
        signups_file=(table.signups or "").strip(),
        welcome=table.welcome,
        **optional,
    )

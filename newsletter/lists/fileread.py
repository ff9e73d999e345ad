"""What a read of one member file knows as it goes (``members.MemberReader``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .addresscache import AddressCache, RowNote, file_digest
from .prevalidate import Prevalidation, Verdict

#: A file with more rows to note than this is not remembered (the notes are loaded into
#: memory on every read): it is read the full way each time, as before.
MAX_NOTES = 250_000


@dataclass(slots=True)
class FileRead:
    """One member file being read, and what the address cache knows of its bytes."""

    index: int
    path: Path
    digest: str = ""  # set when a cache can vouch for files
    vouched: bool = False  # these bytes were read before with nothing to correct
    spotless: bool = True  # nothing to correct so far in this read
    #: These bytes were read before, and these rows (by record index) need refusing or
    #: correcting: the lean path replays them. None: not remembered.
    notes: dict[int, RowNote] | None = None
    record: int = -1  # index of the data record being read, as ``clean_rows`` counts them
    noted: dict[int, RowNote] = field(default_factory=dict)  # this read's, to remember
    replayable: bool = True  # every row to correct so far is one that notes can replay
    pool: Prevalidation | None = None  # validating the file's new addresses meanwhile
    told: dict[str, Verdict] = field(default_factory=dict)  # the pool's, on the rows it flagged

    def as_noted(self, raw: str) -> str:
        """The address of the record being read in a file read before (``notes``): as
        written, or as its note says (ConfigError: refused)."""
        assert self.notes is not None
        note = self.notes.get(self.record)
        if note is None:
            return raw.strip()
        if note.normalised is None:  # refused, as the lean path refuses it
            raise ConfigError(note.reason or "invalid row")
        return note.normalised

    def remember_in(self, cache: AddressCache) -> None:
        """Remember the file, read in full (unless it changed meanwhile): as clean, or with
        the notes of the rows the lean path must refuse or correct."""
        if self.vouched or self.notes is not None:
            return
        if not self.spotless and not (self.replayable and len(self.noted) <= MAX_NOTES):
            return
        if file_digest(self.path) != self.digest:
            return
        if self.spotless:
            cache.mark_clean(self.digest)
        else:
            cache.remember_notes(self.digest, self.noted.items())

"""Finding one reader in member files and in the address cache, and forgetting them there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.lists import load_config
from newsletter.lists.address import row_key, same_address
from newsletter.lists.addresscache import AddressCache, cache_path, file_digest, opened_cache
from newsletter.lists.members import MemberReader
from newsletter.lists.reader_data import memberships, reader_key, unlisted_mentions

SPELLINGS = [
    "ann@example.org", " Ann@EXAMPLE.org\t", '"ann"@example.org', '"a\\nn"@example.org',
    "ann@bücher.de", "ANN@XN--BCHER-KVA.de", "ann @example.org", "joann@example.org",
    "ann@example.org.", "(c)ann@example.org", "ａnn@example.org", "ann@ｅxample.org", "ann",
    "", "@", "ann@", '"ann@x"@example.org',
]


@pytest.mark.parametrize("key", sorted({row_key(s) for s in SPELLINGS}))
def test_same_address_answers_as_normalising_every_row_would(key: str) -> None:
    for raw in SPELLINGS:
        assert same_address(raw, key) == (row_key(raw) == key), (raw, key)


def test_reader_key_needs_an_address_and_takes_a_refused_one_as_written() -> None:
    assert reader_key(" ZOE@Example.ORG ") == "zoe@example.org"
    assert reader_key("Broken@") == "broken@"
    with pytest.raises(ValueError, match="EMAIL: no address given"):
        reader_key("  ")


def test_a_row_whose_columns_do_not_line_up_is_given_as_its_text(settings: Settings) -> None:
    weekly = settings.subscribers_dir / "weekly.csv"
    with weekly.open("a", encoding="utf-8") as handle:
        handle.write("Ann@Example.org,Lee, Ann,Truro\n")
    [found] = memberships(load_config(settings), "ann@example.org")
    assert (found.path, found.line, found.lists) == (weekly, 11, ("weekly",))
    assert found.row == {"text": "Ann@Example.org,Lee, Ann,Truro"}


def test_csv_files_no_list_reads_are_searched_and_unreadable_ones_passed_over(
    settings: Settings,
) -> None:
    folder = settings.subscribers_dir
    (folder / "old-weekly.csv").write_text("email,name\nkit@example.org,Kit\n", encoding="utf-8")
    (folder / "notes.csv").write_text("no header here\n", encoding="utf-8")
    found = unlisted_mentions(load_config(settings), "kit@example.org")
    assert [(m.path.name, m.line, m.lists) for m in found] == [("old-weekly.csv", 2, ())]


def test_the_cache_forgets_every_spelling_and_the_notes_that_name_it(tmp_path: Path) -> None:
    members = tmp_path / "members.csv"
    members.write_text("email\nAnn@EXAMPLE.org\nbo@example.org\nann@\n", encoding="utf-8")
    with opened_cache(tmp_path) as cache:
        list(MemberReader([members], cache=cache, on_problem=lambda p: None).members())
    digest = file_digest(members)
    cache = AddressCache(cache_path(tmp_path))
    try:
        assert cache.notes(digest) is not None  # her row was corrected: the file has notes
        assert [s.as_written for s in cache.spellings("ann@example.org")] == ["Ann@EXAMPLE.org"]
        assert cache.spellings("ann@")[0].refused
        assert cache.forget("ann@example.org") == 1
        assert cache.forget("ann@") == 1
        assert cache.spellings("ann@example.org") == []
        assert cache.notes(digest) is None  # read in full again next time
        assert cache.get("bo@example.org") == "bo@example.org"
    finally:
        cache.close()
    with sqlite3.connect(cache_path(tmp_path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(r) for t in tables for r in db.execute(f"SELECT * FROM {t}")]
    assert [r for r in rows if "ann@" in r.lower()] == []

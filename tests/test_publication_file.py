"""``PublicationFile``: the publication file as it is now, and as it last read cleanly while
an admin's edit leaves it broken."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.lists import config as config_module
from newsletter.lists.config import PublicationFile


def publication_path(settings: Settings) -> Path:
    return settings.subscribers_dir / "publication.toml"


def edit(settings: Settings, old: str, new: str) -> None:
    path = publication_path(settings)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BROKEN = ('title = "The Kellmouth Tide — weekly digest"',
          'title = "The Kellmouth Tide — weekly digest')  # a quote left open


def test_an_edit_is_read_once_and_only_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    load = config_module.load_config
    monkeypatch.setattr(config_module, "load_config", lambda s: reads.append(s.home) or load(s))
    publication = PublicationFile(settings)

    first, again = publication(), publication()
    edit(settings, "— weekly digest", "— the Friday paper")
    edited = publication()

    assert first is again and len(reads) == 2
    assert edited.lists["weekly"].title == "The Kellmouth Tide — the Friday paper"


def test_a_broken_edit_gives_the_version_before_and_is_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    publication = PublicationFile(settings)
    before = publication.last_good()
    edit(settings, *BROKEN)
    reads: list[Path] = []
    load = config_module.load_config
    monkeypatch.setattr(config_module, "load_config", lambda s: reads.append(s.home) or load(s))

    with caplog.at_level(logging.ERROR, logger="newsletter.lists.config"):
        during = [publication.last_good() for _ in range(3)]

    assert all(config is before for config in during)
    assert len(reads) == 1  # a broken version is not parsed again on every request
    [logged] = caplog.records
    assert str(publication_path(settings)) in logged.getMessage()
    assert "the version read before is used" in logged.getMessage()
    with pytest.raises(ConfigError, match=r"publication\.toml:31: invalid TOML"):
        publication()  # the strict reading still says what is wrong, and where

    edit(settings, BROKEN[1], 'title = "The Kellmouth Tide — the Friday paper"')
    assert publication.last_good().lists["weekly"].title == "The Kellmouth Tide — the Friday paper"


def test_a_file_that_never_read_cleanly_is_an_error(settings: Settings) -> None:
    edit(settings, *BROKEN)

    with pytest.raises(ConfigError, match=r"publication\.toml"):
        PublicationFile(settings).last_good()


def test_a_file_removed_after_it_was_read_gives_the_version_before(settings: Settings) -> None:
    publication = PublicationFile(settings)
    before = publication.last_good()
    publication_path(settings).unlink()

    assert publication.last_good() is before
    with pytest.raises(ConfigError, match="not found"):
        publication()

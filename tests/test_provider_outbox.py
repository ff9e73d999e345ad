"""The local outbox: files per recipient, and what a killed sender leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from newsletter.config import Settings
from newsletter.delivery.providers.outbox import OutboxProvider
from tests.servers.fake_provider import sample_batch, sample_issue


def dead_pid() -> int:
    """The id of a process that has just ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_temporary_files_of_a_dead_writer_are_removed_and_live_ones_kept(
    settings: Settings,
) -> None:
    provider = OutboxProvider(settings)
    folder = provider.folder(sample_issue())
    folder.mkdir(parents=True)
    orphan = folder / f".tmp-{dead_pid()}-abc123.eml"
    unnamed = folder / ".tmp-x.eml"
    live = folder / f".tmp-{os.getpid()}-def456.eml"
    for temp in (orphan, unnamed, live):
        temp.write_bytes(b"half a message")

    result = provider.send_batch(sample_issue(), sample_batch(2))

    assert len(result.results) == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        live.name, "00000001-reader1@example.com.eml", "00000002-reader2@example.com.eml",
    ]


def test_a_resent_batch_overwrites_its_files(settings: Settings) -> None:
    provider = OutboxProvider(settings)
    provider.send_batch(sample_issue(), sample_batch(3))
    provider.send_batch(sample_issue(), sample_batch(3))
    files = list(provider.folder(sample_issue()).iterdir())
    assert len(files) == 3 and all(Path(f).suffix == ".eml" for f in files)

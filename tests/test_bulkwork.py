"""Fewer collections during a freeze or a send, and the collector put back afterwards."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.bulkwork import BULK_THRESHOLD, fewer_collections
from newsletter.cli import cli
from newsletter.delivery.base import BatchResult, OutgoingBatch, PreparedIssue
from newsletter.delivery.providers.outbox import OutboxProvider
from newsletter.store import audience


@pytest.fixture(autouse=True)
def collector_as_found() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_raises_the_threshold_and_sets_live_objects_aside_until_the_end() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (BULK_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_higher_threshold_already_set_is_kept() -> None:
    gc.set_threshold(BULK_THRESHOLD * 4, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == BULK_THRESHOLD * 4
    assert gc.get_threshold() == (BULK_THRESHOLD * 4, 10, 10)


def test_the_last_of_several_threads_puts_the_collector_back() -> None:
    before = gc.get_threshold()
    inside, leave_first = threading.Barrier(2), threading.Event()
    seen: list[int] = []

    def worker(first: bool) -> None:
        with fewer_collections():
            inside.wait()
            if first:
                return
            leave_first.wait()
            seen.append(gc.get_threshold()[0])  # the first has left; this one still works

    first = threading.Thread(target=worker, args=(True,))
    second = threading.Thread(target=worker, args=(False,))
    first.start()
    second.start()
    first.join()
    leave_first.set()
    second.join()
    assert seen == [BULK_THRESHOLD]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_real_run_freezes_and_sends_with_fewer_collections(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, set[int]] = {"freeze": set(), "send": set()}
    freeze, send_batch = audience.freeze_audience, OutboxProvider.send_batch

    def watched_freeze(*args: Any, **kwargs: Any) -> Any:
        seen["freeze"].add(gc.get_threshold()[0])
        return freeze(*args, **kwargs)

    def watched_send(
        self: OutboxProvider, issue: PreparedIssue, batch: OutgoingBatch
    ) -> BatchResult:
        seen["send"].add(gc.get_threshold()[0])
        return send_batch(self, issue, batch)

    monkeypatch.setattr(audience, "freeze_audience", watched_freeze)
    monkeypatch.setattr(OutboxProvider, "send_batch", watched_send)
    before = gc.get_threshold()

    result = CliRunner().invoke(cli, ["--home", str(home), "run", "--once"])

    assert result.exit_code == 0, result.output
    assert seen == {"freeze": {BULK_THRESHOLD}, "send": {BULK_THRESHOLD}}
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

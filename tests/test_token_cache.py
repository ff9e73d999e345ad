"""Unsubscribe tokens kept from one issue to the next (``lists.tokencache``).

The engine sends through a scripted provider that records each batch, as in
``test_engine``; the kept tokens live in a real file under the test's ``var/``.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.delivery.base import BatchResult, OutgoingBatch, PreparedIssue, Provider
from newsletter.delivery.engine import Engine
from newsletter.delivery.prepare import RecipientValues
from newsletter.lists import tokencache
from newsletter.lists.tokencache import TokenCache, token_cache_path
from newsletter.models import IssueKind, IssueState, Recipient
from newsletter.store import Store, audience
from newsletter.store import issues as issue_store
from newsletter.tokens import BadTokenError, TokenSigner
from tests.clocks import FakeClock
from tests.test_engine import prepared as engine_issue

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE = "https://news.example.org"


class RecordingProvider(Provider):
    """Accepts every batch whole and keeps what it was given."""

    name = "recording"
    max_batch = 2

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[OutgoingBatch] = []

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        self.calls.append(batch)
        return BatchResult.all_sent(batch, f"<batch-{batch.seq}>")


def prepared(issue_id: int) -> PreparedIssue:
    """An issue whose copies carry both links made of the token."""
    return engine_issue(issue_id, html="<p>%%nl:preferences_url%%</p>",
                        text="%%nl:unsubscribe_url%%")


def members(*numbers: int) -> list[Recipient]:
    return [Recipient(f"U{i}@Example.org", f"U{i}", {}, "weekly") for i in numbers]


def send_issue(store: Store, settings: Settings, signer: TokenSigner,
               audience_members: list[Recipient]) -> dict[str, str]:
    """Freeze and send one issue with kept tokens; each recipient's unsubscribe token."""
    with store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn, list_id="weekly", kind=IssueKind.DIGEST, subject="S", preheader="",
            intro_md="", article_ids=[], at=NOW,
        )
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    audience.freeze_audience(store.engine, issue_id, audience_members, batch_size=2, at=NOW)
    provider = RecordingProvider(settings)
    kept = TokenCache(token_cache_path(settings.var_dir, signer))
    values = RecipientValues(signer, BASE, kept)
    clock = FakeClock()
    engine = Engine(settings.with_changes(concurrency=1), store, provider, values,
                    clock=clock.time, sleep=clock.sleep)
    engine.run(prepared(issue_id))
    tokens = {}
    for batch in provider.calls:
        for recipient in batch.recipients:
            url = recipient.values["unsubscribe_url"]
            token = url.removeprefix(f"{BASE}/unsubscribe/")
            assert recipient.values["preferences_url"] == f"{BASE}/subscription/{token}"
            tokens[recipient.email] = token
    return tokens


def assert_signed_for(tokens: dict[str, str], signer: TokenSigner) -> None:
    for email, token in tokens.items():
        verified = signer.verify(token)
        assert (verified.email, verified.list_id) == (email.lower(), "weekly")


def test_a_second_issue_reads_the_tokens_kept_by_the_first(
    store: Store, settings: Settings
) -> None:
    signer = TokenSigner("the key")
    first = send_issue(store, settings, signer, members(0, 1, 2, 3, 4))
    assert_signed_for(first, signer)
    # What the second issue sends comes from the kept file: a token put there is the one
    # that goes out (nothing else would make it so).
    kept = TokenCache(token_cache_path(settings.var_dir, signer))
    first_batch = {"u0@example.org": "kept-token", "u1@example.org": first["U1@Example.org"]}
    kept.keep("weekly", 1, first_batch)  # batches are numbered from 1
    kept.close()
    second = send_issue(store, settings, signer, members(0, 1, 2, 3, 4))
    assert second["U0@Example.org"] == "kept-token"
    assert {k: v for k, v in second.items() if k != "U0@Example.org"} == {
        k: v for k, v in first.items() if k != "U0@Example.org"
    }


def test_members_who_joined_or_left_shift_the_batches_and_every_token_stays_right(
    store: Store, settings: Settings
) -> None:
    signer = TokenSigner("the key")
    send_issue(store, settings, signer, members(0, 1, 2, 3, 4))
    shifted = send_issue(store, settings, signer, members(1, 2, 9, 3, 4, 5))
    assert sorted(shifted) == [f"U{i}@Example.org" for i in (1, 2, 3, 4, 5, 9)]
    assert_signed_for(shifted, signer)
    assert_signed_for(send_issue(store, settings, signer, members(1, 2, 9, 3, 4, 5)), signer)


def test_another_key_keeps_its_tokens_apart_and_the_old_file_goes(
    store: Store, settings: Settings
) -> None:
    old, new = TokenSigner("the old key"), TokenSigner("the new key")
    send_issue(store, settings, old, members(0, 1, 2))
    old_path = token_cache_path(settings.var_dir, old)
    assert old_path.exists() and old_path != token_cache_path(settings.var_dir, new)
    tokens = send_issue(store, settings, new, members(0, 1, 2))
    assert_signed_for(tokens, new)
    assert not old_path.exists()
    with pytest.raises(BadTokenError):
        old.verify(tokens["U0@Example.org"])


def test_the_kept_file_is_its_owner_alone(tmp_path: Path) -> None:
    path = token_cache_path(tmp_path, TokenSigner("the key"))
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)  # as a looser umask would have left it
    TokenCache(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def open_new_caches(start: Barrier, folder: Path, rounds: int, errors: Queue[str]) -> None:
    """In a process of its own: open round ``r``'s new file as the others do, ``rounds`` times."""
    for r in range(rounds):
        start.wait()
        try:
            kept = TokenCache(folder / str(r) / "cache" / "tokens-x.sqlite")
            kept.keep("weekly", 0, {"u0@example.org": "token"})
            kept.close()
        except sqlite3.Error as exc:
            errors.put(f"round {r}: {exc}")
    errors.put("done")


def test_workers_starting_at_once_all_open_the_new_file(tmp_path: Path) -> None:
    # Two workers that started together once made the new file WAL at the same moment, and
    # SQLite answered one of them "database is locked" without waiting: it crashed at start.
    # Without the set-up lock, 50 rounds of 4 processes failed 7 times here.
    spawn = multiprocessing.get_context("spawn")
    start, errors = spawn.Barrier(4), spawn.Queue()
    processes = [spawn.Process(target=open_new_caches, args=(start, tmp_path, 50, errors))
                 for _ in range(4)]
    for process in processes:
        process.start()
    said = [errors.get(timeout=120) for _ in range(len(processes))]
    while said.count("done") < len(processes):
        said.append(errors.get(timeout=120))
    for process in processes:
        process.join()
    assert [s for s in said if s != "done"] == []
    assert [p.exitcode for p in processes] == [0] * 4


def test_the_file_name_is_no_token_and_tells_keys_apart() -> None:
    signer = TokenSigner("the key")
    name = signer.fingerprint()
    assert name == TokenSigner("the key").fingerprint() != TokenSigner("other").fingerprint()
    assert "the key" not in name
    with pytest.raises(BadTokenError):
        signer.verify(name)


def test_a_forgotten_reader_leaves_no_kept_token(store: Store, settings: Settings) -> None:
    signer = TokenSigner("the key")
    send_issue(store, settings, signer, members(0, 1, 2))
    assert tokencache.forget(settings.var_dir, "u1@example.org") == 1
    path = token_cache_path(settings.var_dir, signer)
    assert b"u1@example.org" not in b"".join(p.read_bytes() for p in path.parent.iterdir())
    assert tokencache.forget(settings.var_dir, "u1@example.org") == 0
    kept = TokenCache(path)
    assert set(kept.batch("weekly", 1)) == {"u0@example.org"}
    kept.close()

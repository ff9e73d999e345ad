"""Two drafters taking the same new articles at once (the scheduler's collection, and a
publish hook over the API) never put one article in two issues of a list.

Both drafters choose the list's new articles before either creates its draft: a barrier
holds each after its choice until the other has chosen too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.config import Settings
from newsletter.issues.drafting import Drafter
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store
from newsletter.store.tables import issue_articles, issues


def race(
    store: Store, settings: Settings, list_id: str, monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    both_chose = threading.Barrier(2, timeout=60)
    choose: Callable[..., Any] = Drafter.choose

    def choose_then_wait(self: Drafter, *args: Any) -> Any:
        chosen = choose(self, *args)
        both_chose.wait()
        return chosen

    monkeypatch.setattr(Drafter, "choose", choose_then_wait)
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda _: Publisher(settings, store).draft(list_id), range(2)))
    return [issue_id for one in made for issue_id in one]


def articles_by_issue(store: Store, list_id: str) -> dict[int, list[int]]:
    with store.engine.connect() as conn:
        ids = conn.execute(select(issues.c.id).where(issues.c.list_id == list_id)).scalars()
        return {i: issue_store.article_ids(conn, i) for i in ids}


@pytest.mark.parametrize("list_id", ["every-article", "weekly"])
def test_two_drafters_at_once_draft_each_article_once(
    db_settings: Settings, store: Store, list_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = Publisher(db_settings, store).collect()
    assert report.new > 1

    made = race(store, db_settings, list_id, monkeypatch)

    drafted = articles_by_issue(store, list_id)
    assert sorted(made) == sorted(drafted)
    every = [a for ids in drafted.values() for a in ids]
    assert every and len(every) == len(set(every)), drafted
    if list_id == "weekly":  # one digest: the drafter that lost made none
        assert len(made) == 1
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(issue_articles)).scalar_one()
    assert rows == len(every)

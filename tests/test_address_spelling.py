"""An address goes out as the list wrote it; it is compared, suppressed and signed lower-cased.

The part before the @ may be case-sensitive on the receiving side (RFC 5321 §2.4), so a send
uses the first spelling a list has of an address. Everything that compares addresses keys on
the lower-cased form: de-duplication, the ledger's rows that webhooks look up, suppressions,
and the unsubscribe token, so that the links in emails already sent keep working.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.store import Store
from newsletter.store.tables import recipients
from newsletter.tokens import TokenSigner
from tests.test_send_header_safety import (
    environment,
    members_file,
    outbox_recipients,
    queue_weekly,
    run,
)

WRITTEN = "David.Ostergaard@example.org"
KEY = WRITTEN.lower()
ROWS = [
    (WRITTEN, "David Østergaard", "Kellmouth"),
    ("ann@example.org", "Ann Cole", "Truro"),
    ("DAVID.OSTERGAARD@Example.ORG", "David again", "Truro"),  # the same address: dropped
]


def ledger_keys(env: dict[str, str], issue_id: int) -> list[str]:
    store = Store.open(env["NEWSLETTER_DATABASE_URL"])
    try:
        with store.engine.connect() as conn:
            found = conn.execute(
                select(recipients.c.email)
                .where(recipients.c.issue_id == issue_id)
                .order_by(recipients.c.id)
            )
            return list(found.scalars())
    finally:
        store.close()


def token_address(list_unsubscribe: str, secret: str) -> str:
    found = re.search(r"/unsubscribe/([^>]+)>", list_unsubscribe)
    assert found, list_unsubscribe
    return TokenSigner(secret).verify(found.group(1)).email


def test_outbox_sends_the_first_spelling_and_keys_everything_on_the_lower_case(
    db_settings: Settings,
) -> None:
    env = environment(db_settings, "outbox", None)
    members_file(db_settings.home, ROWS)
    issue_id = queue_weekly(db_settings, env)
    sent = run(db_settings.home, env, "send")
    assert sent.exit_code == 0, sent.output

    delivered = outbox_recipients(db_settings.home, issue_id)
    assert sorted(delivered) == sorted([WRITTEN, "ann@example.org"])
    secret = env["NEWSLETTER_SECRET_KEY"]
    link = str(delivered[WRITTEN]["List-Unsubscribe"])
    assert token_address(link, secret) == KEY
    # The very token a send before this change made: links already delivered keep working.
    assert TokenSigner(secret).sign(KEY, "weekly") in link
    assert ledger_keys(env, issue_id) == ["ann@example.org", KEY]  # in address order


def test_a_suppression_in_any_case_wins_over_the_spelling_in_the_list(
    db_settings: Settings,
) -> None:
    env = environment(db_settings, "outbox", None)
    members_file(db_settings.home, ROWS)
    added = run(db_settings.home, env, "suppressions", "add", "david.OSTERGAARD@example.org")
    assert added.exit_code == 0, added.output
    issue_id = queue_weekly(db_settings, env)
    sent = run(db_settings.home, env, "send")
    assert sent.exit_code == 0, sent.output
    assert sorted(outbox_recipients(db_settings.home, issue_id)) == ["ann@example.org"]


def test_mailgun_gets_the_first_spelling_with_its_own_values(
    settings: Settings, server: FakeProviderServer
) -> None:
    env = environment(settings, "mailgun", server)
    members_file(settings.home, ROWS)
    queue_weekly(settings, env)
    sent = run(settings.home, env, "send")
    assert sent.exit_code == 0, sent.output

    copies = {c.recipient: c for c in server.recorder.copies("mailgun")}
    assert sorted(copies) == sorted([WRITTEN, "ann@example.org"])
    content = copies[WRITTEN].content
    assert token_address(content.list_unsubscribe, env["NEWSLETTER_SECRET_KEY"]) == KEY
    assert "David" in content.html and "%recipient." not in content.html


def test_the_bench_members_path_is_unchanged_for_lower_case_lists(tmp_path: Path) -> None:
    """A list written in lower case (the usual one) stores no second spelling."""
    from newsletter.lists import MemberReader

    path = tmp_path / "a.csv"
    path.write_text("email\nann@example.org\nBo@Example.org\n", encoding="utf-8")
    found = [r.email for r in MemberReader([path], dedupe=False).recipients("weekly")]
    assert found == ["ann@example.org", "Bo@example.org"]

"""Pre-send checks on real renderings of real issues, and how ``issue queue`` obeys them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.errors import LintError
from newsletter.issues.lint import check, sample_of
from newsletter.models import Article, IssueKind, IssueState
from newsletter.publisher import Publisher
from newsletter.store import articles as article_store
from newsletter.store import issues as issue_store
from tests.schedule_helpers import ListSpec, make_home, open_publication, write_article

NOW = datetime.now(UTC)
BARE_DIGEST_HTML = """<!doctype html>
<html><head><style>p { color: #333; }</style></head><body>
<img src="https://notes.example.org/logo.png">
{{ intro }}
{% for article in articles %}<p><a href="{{ article.url }}">{{ article.title }}</a></p>{% endfor %}
</body></html>
"""
BARE_DIGEST_TEXT = "{% for article in articles %}{{ article.title }}\n{% endfor %}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = make_home(
        tmp_path,
        [
            ListSpec("weekly"),
            ListSpec("branch", from_email="branch@mail.notes.example.org"),
            ListSpec("outside", from_email="news@elsewhere.example.com"),
        ],
    )
    write_article(home, "quay-works", NOW - timedelta(hours=2))
    return home


@pytest.fixture
def publisher(home: Path, tmp_path: Path) -> Iterator[Publisher]:
    _, store, publisher = open_publication(home, f"sqlite:///{tmp_path / 'lint.db'}")
    publisher.collect()
    yield publisher
    store.close()


def draft(publisher: Publisher, list_id: str = "weekly", **values: object) -> int:
    [issue_id] = publisher.draft(list_id, **values)  # type: ignore[arg-type]
    return issue_id


def test_a_well_made_issue_passes(publisher: Publisher) -> None:
    report = publisher.check(draft(publisher))
    assert report.errors == () and report.warnings == () and report.clean


def test_an_issue_without_articles_or_introduction_is_empty(publisher: Publisher) -> None:
    with publisher.store.engine.begin() as conn:
        bare = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="Nothing",
            preheader="",
            intro_md="",
            article_ids=[],
            at=NOW,
        )
        note = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="A note",
            preheader="",
            intro_md="Closed for the holiday.",
            article_ids=[],
            at=NOW,
        )
    assert "the issue is empty: no articles and no introduction" in publisher.check(bare).errors
    assert not any("empty" in e for e in publisher.check(note).errors)


def test_html_that_gmail_would_clip_is_an_error(publisher: Publisher) -> None:
    issue_id = draft(publisher, intro_md="The long read. " * 8000)
    [error] = publisher.check(issue_id).errors
    assert error.startswith("the HTML is 1") and "Gmail clips messages over 102 KB" in error


def test_templates_without_unsubscribe_links_and_images_without_alt(
    home: Path,
    publisher: Publisher,
) -> None:
    (home / "templates" / "digest.html").write_text(BARE_DIGEST_HTML, encoding="utf-8")
    (home / "templates" / "digest.txt").write_text(BARE_DIGEST_TEXT, encoding="utf-8")
    fresh = Publisher(publisher.settings, publisher.store)  # reads the edited templates
    report = fresh.check(draft(fresh))
    assert report.errors == (
        "the HTML has no unsubscribe link (templates write {{ recipient.unsubscribe_url }})",
        "the text part has no unsubscribe link (templates write {{ recipient.unsubscribe_url }})",
    )
    assert report.warnings == ("image without alt text: https://notes.example.org/logo.png",)


def test_a_missing_list_unsubscribe_header_is_an_error(publisher: Publisher) -> None:
    issue_id = draft(publisher)
    sample = sample_of(publisher.store, issue_id, publisher.prepared(issue_id),
                       publisher.recipient_values(), publisher.config.publication.from_email)
    headers = {k: v for k, v in sample.copy.headers.items() if k != "List-Unsubscribe"}
    broken = dataclasses.replace(sample, copy=dataclasses.replace(sample.copy, headers=headers))
    assert check(sample).errors == ()
    assert check(broken).errors == (
        "no List-Unsubscribe header: inboxes show no unsubscribe button and may refuse it",
    )


def test_template_syntax_left_in_the_output_is_an_error(publisher: Publisher) -> None:
    in_intro = draft(publisher, intro_md="Dear {{ reader }}, welcome.")
    in_subject = draft(publisher, subject="News for {% name %}", article_ids=[1])
    assert publisher.check(in_intro).errors == (
        "template syntax left in the HTML: 'Dear {{ reader }}, welcome.'",
        "template syntax left in the text part: 'Dear {{ reader }}, welcome.'",
    )
    assert publisher.check(in_subject).errors == (
        "template syntax left in the subject: 'News for {% name %}'",
        "template syntax left in the HTML: 'News for {% name %}'",  # the <title>
    )


def test_template_syntax_shown_as_code_is_content(publisher: Publisher) -> None:
    intro = "Our templates say `{{ title }}`:\n\n```\n{% for a in articles %}\n```\n"
    assert publisher.check(draft(publisher, intro_md=intro)).errors == ()


def test_a_from_address_outside_the_publications_domain_is_an_error(
    publisher: Publisher,
) -> None:
    assert publisher.check(draft(publisher, "branch")).errors == ()  # a subdomain is fine
    assert publisher.check(draft(publisher, "outside")).errors == (
        "the from address news@elsewhere.example.com is outside the publication's domain "
        "notes.example.org: it would fail DMARC alignment (set the list's from_email on "
        "notes.example.org)",
    )


def test_plain_http_links_and_long_subjects_are_warnings(publisher: Publisher) -> None:
    issue_id = draft(
        publisher,
        subject="A" * 79,
        intro_md="See [the old site](http://old.example.org/) and "
        "[again](http://old.example.org/).",
    )
    report = publisher.check(issue_id)
    assert report.errors == ()
    assert report.warnings == (
        "link over plain http (not https): http://old.example.org/",
        "the subject is 79 characters; over 78 it is cut short in most inboxes",
    )


def test_a_publication_served_over_http_warns_about_its_unsubscribe_link(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path / "http", [ListSpec("weekly")], base_url="http://notes.example.org")
    write_article(home, "quay-works", NOW - timedelta(hours=2))
    _, store, publisher = open_publication(home, f"sqlite:///{tmp_path / 'http.db'}")
    try:
        publisher.collect()
        warnings = publisher.check(draft(publisher)).warnings
    finally:
        store.close()
    assert any(
        w.startswith("link over plain http (not https): http://notes.example.org/unsub")
        for w in warnings
    )


def test_queue_refuses_errors_even_when_forced(publisher: Publisher) -> None:
    issue_id = draft(publisher, "outside")
    with pytest.raises(LintError) as caught:
        publisher.queue(issue_id, force=True)
    assert caught.value.findings[0].startswith("the from address news@elsewhere.example.com")
    assert state_of(publisher, issue_id) == IssueState.DRAFT


def test_queue_refuses_warnings_unless_forced(publisher: Publisher) -> None:
    issue_id = draft(publisher, subject="B" * 80)
    with pytest.raises(LintError) as caught:
        publisher.queue(issue_id)
    assert caught.value.findings == [
        "warning: the subject is 80 characters; over 78 it is cut short in most inboxes",
        "warnings block queueing unless forced (issue queue --force)",
    ]
    assert state_of(publisher, issue_id) == IssueState.DRAFT
    assert publisher.queue(issue_id, force=True).warnings == (caught.value.findings[0][9:],)
    assert state_of(publisher, issue_id) == IssueState.QUEUED


def state_of(publisher: Publisher, issue_id: int) -> IssueState:
    with publisher.store.engine.connect() as conn:
        return issue_store.get(conn, issue_id).state


# -- the command line ---------------------------------------------------------------------------
def run(home: Path, publisher: Publisher, *args: str) -> Result:
    database = f"NEWSLETTER_DATABASE_URL={publisher.settings.database_url}\n"
    (home / ".env").write_text(database, encoding="utf-8")
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_issue_check_exits_1_on_errors_and_lists_them(home: Path, publisher: Publisher) -> None:
    good, bad = draft(publisher), draft(publisher, "outside")
    clean = run(home, publisher, "issue", "check", str(good))
    failed = run(home, publisher, "issue", "check", str(bad))
    as_json = run(home, publisher, "issue", "check", str(bad), "--json")

    assert (clean.exit_code, clean.output) == (0, f"Issue {good}: no problems found.\n")
    assert failed.exit_code == 1
    assert failed.output.splitlines()[:2] == [
        "Errors (1):",
        "  - the from address news@elsewhere.example.com is outside the "
        "publication's domain notes.example.org: it would fail DMARC alignment (set the list's "
        "from_email on notes.example.org)",
    ]
    assert "Warnings (0):" in failed.output
    assert as_json.exit_code == 1
    assert '"warnings": []' in as_json.output and f'"issue": {bad}' in as_json.output


def test_issue_queue_blocks_on_warnings_until_forced(home: Path, publisher: Publisher) -> None:
    issue_id = draft(publisher, subject="C" * 90)
    blocked = run(home, publisher, "issue", "queue", str(issue_id))
    forced = run(home, publisher, "issue", "queue", str(issue_id), "--force")

    assert blocked.exit_code == 1
    assert blocked.output.startswith(
        "Error: pre-send checks failed:\n  - warning: the subject is 90"
    )
    assert forced.exit_code == 0, forced.output
    assert forced.output.splitlines() == [
        "Queued despite a warning (--force): the subject is 90 characters; over 78 it is cut "
        "short in most inboxes",
        f"Issue {issue_id} queued; `newsletter send` (or the scheduler) sends it.",
    ]


# -- empty articles and subjects ------------------------------------------------------------------
def store_article(publisher: Publisher, article: Article) -> int:
    """An article as an earlier version stored it (collect now skips empty entries)."""
    with publisher.store.engine.begin() as conn:
        article_store.upsert(conn, [article], at=NOW, archive_before=None)
        [(article_id, _)] = article_store.unsent_for_list(
            conn, "weekly", ["posts"], since=NOW - timedelta(days=1)
        )
    return article_id


def test_an_issue_with_an_empty_article_is_an_error_naming_it(
    home: Path, publisher: Publisher
) -> None:
    draft(publisher)  # the folder's article is offered, so only the empty one is left
    empty = store_article(publisher, Article("posts", "sha256:e3b0", "", "", None))
    issue_id = draft(publisher, article_ids=[empty])

    report = publisher.check(issue_id)
    checked = run(home, publisher, "issue", "check", str(issue_id))

    expected = (
        f"article {empty} from source posts is empty: no title, no text and no link "
        f"(issue remove-article {issue_id} {empty})"
    )
    assert report.errors == (expected,)
    assert checked.exit_code == 1 and f"  - {expected}" in checked.output
    removed = run(home, publisher, "issue", "remove-article", str(issue_id), str(empty))
    assert removed.exit_code == 0, removed.output
    assert publisher.check(issue_id).errors == (  # it was the only article
        "the issue is empty: no articles and no introduction",
    )


def test_an_untitled_article_warns_and_an_empty_subject_is_an_error(publisher: Publisher) -> None:
    draft(publisher)
    picture = '<img src="https://notes.example.org/a.png" alt="A">'
    untitled = store_article(
        publisher, Article("posts", "https://notes.example.org/a", "", "", None, picture)
    )
    with publisher.store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.ARTICLE,
            subject="",
            preheader="",
            intro_md="",
            article_ids=[untitled],
            at=NOW,
        )

    report = publisher.check(issue_id)

    assert report.errors == ("the subject is empty (issue edit --subject)",)
    assert report.warnings == (f"article {untitled} from source posts has no title",)

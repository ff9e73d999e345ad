"""Reading subscribers/publication.toml: the example maps onto the models, mistakes are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from newsletter.errors import ConfigError, ListError, NotFoundError
from newsletter.lists import ConfigFileError, PublicationConfig, load_config_file
from newsletter.models import Approval, Cadence

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
[publication]
name = "Test Weekly"
base_url = "https://news.example.org/"
from_email = "editor@example.org"
postal_address = "1 Test Street"

[sources.articles]
type = "folder"
path = "articles"

[lists.weekly]
title = "Weekly"
members = "weekly.csv"
sources = ["articles"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "articles").mkdir()
    (tmp_path / "subscribers" / "weekly.csv").write_text("email,name\n", encoding="utf-8")
    return tmp_path


def load(home: Path, text: str) -> PublicationConfig:
    path = home / "subscribers" / "publication.toml"
    path.write_text(text, encoding="utf-8")
    return load_config_file(path, home)


def problems_of(home: Path, text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        load(home, text)
    return [str(p) for p in caught.value.problems]


def test_example_publication_maps_onto_the_models(tmp_path: Path) -> None:
    shutil.copytree(REPO / "subscribers", tmp_path / "subscribers")
    shutil.copytree(REPO / "articles", tmp_path / "articles")
    config = load_config_file(tmp_path / "subscribers" / "publication.toml", tmp_path)

    assert config.publication.base_url == "https://news.example.org"
    assert config.publication.postal_address.startswith("The Kellmouth Tide, ")
    weekly, instant = config.list("weekly"), config.list("every-article")
    assert (weekly.cadence, weekly.schedule, weekly.timezone) == (
        Cadence.DIGEST,
        "0 8 * * mon",
        "Europe/London",
    )
    assert (weekly.approval, weekly.template, weekly.members_files) == (
        Approval.AUTO,
        "digest",
        ("weekly.csv",),
    )
    assert (instant.cadence, instant.timezone, instant.template) == (
        Cadence.INSTANT,
        "America/New_York",
        "article",
    )
    source = config.sources["articles"]
    assert (source.type, source.path) == ("folder", str(tmp_path / "articles"))
    assert source.options == {"base_url": "https://news.example.org"}


def test_defaults_and_a_single_members_string(home: Path) -> None:
    config = load(home, MINIMAL)
    weekly = config.list("weekly")
    assert weekly.members_files == ("weekly.csv",)
    assert (weekly.cadence, weekly.template, weekly.timezone, weekly.max_articles) == (
        Cadence.DIGEST,
        "digest",
        "UTC",
        20,
    )
    assert config.publication.from_name == "Test Weekly"  # defaults to the name
    assert config.publication.base_url == "https://news.example.org"
    assert config.member_paths("weekly") == (home / "subscribers" / "weekly.csv",)


def test_instant_lists_default_to_the_article_template(home: Path) -> None:
    config = load(
        home,
        MINIMAL.replace('sources = ["articles"]', 'sources = ["articles"]\ncadence = "instant"'),
    )
    assert config.list("weekly").template == "article"


def test_unknown_list_names_the_known_ones(home: Path) -> None:
    config = load(home, MINIMAL)
    with pytest.raises(NotFoundError, match=r"no list 'monthly' .*\(lists: weekly\)"):
        config.list("monthly")


def test_toml_syntax_error_names_file_and_line(home: Path) -> None:
    with pytest.raises(ListError) as caught:
        load(home, MINIMAL.replace('title = "Weekly"', 'title = "Weekly'))
    assert caught.value.line == 12
    assert str(caught.value).startswith(
        f"{home / 'subscribers' / 'publication.toml'}:12: invalid TOML"
    )


def test_unknown_key_is_an_error_with_its_line_and_a_suggestion(home: Path) -> None:
    text = MINIMAL.replace('title = "Weekly"', 'title = "Weekly"\nshedule = "0 8 * * mon"')
    [problem] = problems_of(home, text)
    assert problem.endswith(
        "publication.toml:13: lists.weekly.shedule: unknown key (did you mean 'schedule'? "
        "allowed: title, description, members, sources, cadence, schedule, timezone, approval, "
        "template, max_articles, from_email, from_name, reply_to, signups, welcome)"
    )


def test_bad_cron_and_bad_timezone_are_both_reported(home: Path) -> None:
    text = MINIMAL + 'schedule = "0 8 * *"\ntimezone = "Europe/Kellmouth"\n'
    problems = problems_of(home, text)
    assert len(problems) == 2
    assert problems[0].endswith(
        ":15: lists.weekly.schedule: '0 8 * *' is not a cron expression "
        "(minute hour day month weekday): Wrong number of fields; got 4, expected 5"
    )
    assert problems[1].endswith(
        ":16: lists.weekly.timezone: 'Europe/Kellmouth' is not an IANA time zone name "
        "(such as 'Europe/London')"
    )


def test_unknown_source_names_the_declared_ones(home: Path) -> None:
    [problem] = problems_of(home, MINIMAL.replace('sources = ["articles"]', 'sources = ["feed"]'))
    assert problem.endswith(":14: lists.weekly.sources: unknown source 'feed' (sources: articles)")


def test_missing_members_file_is_named(home: Path) -> None:
    [problem] = problems_of(home, MINIMAL.replace('"weekly.csv"', '["weekly.csv", "extra.csv"]'))
    expected = (
        f":13: lists.weekly.members: members file {home / 'subscribers' / 'extra.csv'} not found"
    )
    assert expected in problem


def test_members_outside_the_subscribers_folder_are_refused(home: Path) -> None:
    [problem] = problems_of(home, MINIMAL.replace('"weekly.csv"', '"../weekly.csv"'))
    assert "lists.weekly.members: '../weekly.csv' must be a file name inside" in problem


def test_wrong_types_and_values_are_reported_with_what_was_found(home: Path) -> None:
    text = MINIMAL + 'max_articles = "20"\ncadence = "weekly"\n'
    problems = problems_of(home, text)
    assert problems[0].endswith(
        ":15: lists.weekly.max_articles: input should be a valid integer, not '20'"
    )
    assert problems[1].endswith(
        ":16: lists.weekly.cadence: input should be 'digest' or 'instant', not 'weekly'"
    )


def test_schedule_on_an_instant_list_is_an_error(home: Path) -> None:
    text = MINIMAL + 'cadence = "instant"\nschedule = "0 8 * * *"\n'
    [problem] = problems_of(home, text)
    assert problem.endswith(
        ":16: lists.weekly.schedule: only digest lists have a schedule (this list is instant)"
    )


def test_every_table_is_checked_in_one_run(home: Path) -> None:
    text = (
        MINIMAL.replace('from_email = "editor@example.org"', 'from_email = "editor@"')
        + '\n[lists.Bad]\ntitle = "x"\n'
        + '\n[lists.other]\nmembers = "weekly.csv"\nsources = ["articles"]\n'
        + '\n[sources.news]\ntype = "feed"\npath = "x"\n'
    )
    problems = problems_of(home, text)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "publication.from_email",
        "lists.Bad",
        "lists.other.title",
        "sources.news.url",
        "sources.news.path",
    ]
    assert all(p.startswith(f"{home / 'subscribers' / 'publication.toml'}:") for p in problems)


def test_missing_tables_are_named(home: Path) -> None:
    problems = problems_of(home, 'title = "x"\n')
    assert [p.split(": ", 1)[1] for p in problems] == [
        "publication: required key is missing",
        "lists: required key is missing",
        "title: unknown key (allowed: publication, sources, lists)",
    ]


def test_missing_publication_file_says_where_it_is_expected(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"publication\.toml: not found"):
        load_config_file(home / "subscribers" / "publication.toml", home)


def test_values_that_go_in_headers_cannot_hold_line_breaks_or_control_characters(
    home: Path,
) -> None:
    """The From name and the list's title (in List-Id) are in every message's headers."""
    hostile_from = 'from_name = "Test\\r\\nBcc: x@y.example"'
    text = (
        MINIMAL.replace('postal_address = "1 Test Street"',
                        f'postal_address = "1 Test Street"\n{hostile_from}')
        .replace('title = "Weekly"', 'title = "Weekly\\u001b"\nfrom_name = "Ed\\tWeekly"')
    )
    problems = problems_of(home, text)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "publication.from_name: holds a carriage return (U+000D), which an email header "
        "cannot carry",
        "lists.weekly.title: holds a control character (U+001B), which an email header "
        "cannot carry",
        "lists.weekly.from_name: holds a tab (U+0009), which an email header cannot carry",
    ]

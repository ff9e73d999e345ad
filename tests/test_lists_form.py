"""``newsletter lists form LIST``: the snippet a publisher pastes, and a list without sign-ups."""

from __future__ import annotations

from html.parser import HTMLParser

from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import Settings
from tests.signup_support import take_signups


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def run(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(settings.home), "lists", *args], env=env)
    return result.exit_code, result.output


def test_the_snippet_frames_our_form_or_posts_a_plain_one_to_it(settings: Settings) -> None:
    take_signups(settings)
    code, output = run(settings, "form", "weekly")
    assert code == 0, output
    parser = Elements()
    parser.feed(output)
    tags = dict(parser.found)
    assert tags["iframe"]["src"] == "https://news.example.org/subscribe/weekly?embed=1"
    assert tags["iframe"]["title"] == "Subscribe to The Kellmouth Tide \u2014 weekly digest"
    assert (tags["form"]["method"], tags["form"]["action"]) == \
        ("post", "https://news.example.org/subscribe/weekly")
    names = [attrs.get("name") for tag, attrs in parser.found if tag == "input"]
    assert names == ["email", "name"]


def test_the_snippet_points_at_where_the_app_is_served(settings: Settings) -> None:
    take_signups(settings)
    code, output = run(settings, "form", "weekly",
                       env={"NEWSLETTER_PUBLIC_URL": "https://mail.example.org/"})
    assert code == 0 and 'action="https://mail.example.org/subscribe/weekly"' in output


def test_a_list_without_sign_ups_is_refused_naming_the_list_and_the_key(
    settings: Settings
) -> None:
    code, output = run(settings, "form", "every-article")
    assert code == 1
    assert "'every-article' takes no sign-ups" in output and "signups" in output
    assert "[lists.every-article]" in output
    code, output = run(settings, "form", "nope")
    assert code == 1 and "no list 'nope'" in output

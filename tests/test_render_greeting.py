"""The name in "Hi …,": the first given name, without quotes or punctuation around it, or a
neutral greeting when the name gives nothing to greet."""

from __future__ import annotations

import email
import json
from email.message import Message
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.delivery.prepare import RecipientValues
from newsletter.tokens import TokenSigner

NAMES = [
    ("“Quoted” Reader", "Quoted"),
    ('"Sam" Lee', "Sam"),
    ("'Jo' March", "Jo"),
    ("Ann", "Ann"),
    ("  Ann   Smith  ", "Ann"),
    ("Jean-Luc Picard", "Jean-Luc"),
    ("O'Brien", "O'Brien"),
    ("Dr. Xavier", "Dr. Xavier"),
    ("Dr Jane Smith", "Dr Smith"),
    ("Dr. Jane Smith, PhD", "Dr. Smith"),
    ("DR. JOHN SMITH", "Dr. Smith"),
    ("Rev. Martin King Jr.", "Rev. King"),
    ("Smith, John", "John"),
    ("de la Cruz, Juan", "Juan"),
    ("Jane Smith, MD", "Jane"),
    ("King, Martin, Jr.", "Martin"),
    ("(Bob) Jones", "Bob"),
    ("Ann,", "Ann"),
    ("JOHN SMITH", "John"),
    ("ANNE-MARIE O'NEIL", "Anne-Marie"),
    ("JP Morgan", "JP"),
    ("danah boyd", "danah"),
    ("Иван Петров", "Иван"),
    ("ΝΙΚΟΣ ΠΑΠΑΔΟΠΟΥΛΟΣ", "Νικος"),
    ("山田 太郎", "山田"),
    ("张伟", "张伟"),
    ("محمد علي", "محمد"),
    ("Zoë Ångström", "Zoë"),
    ("🙂 Sam", "Sam"),
    ("Sam 🙂", "Sam"),
    ("🙂", "there"),
    ("🙂🙂 🎉", "there"),
    ("“”", "there"),
    ("---", "there"),
    ("12345", "there"),
    ("Dr.", "there"),
    ("", "there"),
    ("   ", "there"),
]


@pytest.fixture(scope="module")
def values() -> RecipientValues:
    return RecipientValues(TokenSigner("k" * 32), "https://news.example.org")


@pytest.mark.parametrize(("name", "greeting"), NAMES)
def test_greeting_name(values: RecipientValues, name: str, greeting: str) -> None:
    assert values("a@example.org", name, "weekly", {})["greeting_name"] == greeting
    only = values.only({"greeting_name"})
    assert only("a@example.org", name, "weekly", {}) == {"greeting_name": greeting}


def _ok(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def test_sent_digest_greets_by_the_cleaned_name(home: Path) -> None:
    (home / "subscribers" / "weekly.csv").write_text(
        "email,name,city\nquoted@example.org,“Quoted” Reader,Kellmouth\n"
        "smile@example.org,🙂,Truro\n",
        encoding="utf-8",
    )
    _ok(home, "collect")
    (issue_id,) = json.loads(_ok(home, "issue", "draft", "weekly", "--json"))["drafted"]
    _ok(home, "issue", "queue", str(issue_id))
    _ok(home, "send")
    folder = home / "var" / "outbox" / f"issue-{issue_id}-weekly"
    greetings = {}
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        text = _text_part(message)
        greetings[message["To"]] = next(line for line in text.splitlines() if line.startswith("Hi"))
    assert sorted(greetings.values()) == ["Hi Quoted,", "Hi there,"]

"""Every ``newsletter …`` command the README and docs/ name exists, with the options they show.

Documentation that names a command the CLI no longer has sends a reader into an error; this
test finds each such line in a shell example or inline code and asks click whether it parses.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from newsletter.cli import cli
from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: ``newsletter`` (or ``.venv/bin/newsletter``) where a command starts, followed by words.
COMMAND = re.compile(r"(?:^\s*(?:\$\s*)?|bin/|&&\s*|;\s*|\(\s*)newsletter((?:\s+[^\s`#|&;)]+)+)")


def fenced_and_inline_code(text: str) -> Iterator[str]:
    """The lines of fenced blocks, and each inline code span, of a Markdown text."""
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            yield line
        else:
            yield from re.findall(r"`([^`]+)`", line)


def documented_commands() -> Iterator[tuple[str, str]]:
    for document in DOCUMENTS:
        for code in fenced_and_inline_code(document.read_text(encoding="utf-8")):
            for match in COMMAND.finditer(code):
                yield f"{document.name}: {code.strip()}", match.group(1)


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """Walk the command tree down the words; return the command reached and its arguments."""
    command: click.Command = cli
    context = click.Context(cli, info_name="newsletter")
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        found = command.get_command(context, words[0])
        if found is None:
            raise AssertionError(f"no command {words[0]!r} under {command.name!r}")
        command, words = found, words[1:]
    return command, words


def global_options_removed(words: list[str]) -> list[str]:
    """Drop ``--home DIR`` and ``--env-file F`` that stand before the command."""
    while words and words[0] in ("--home", "--env-file"):
        words = words[2:]
    return words


def check_options(command: click.Command, arguments: list[str]) -> None:
    names = {name for param in command.params for name in param.opts + param.secondary_opts}
    for word in arguments:
        option = word.split("=", 1)[0]
        if option.startswith("--") and option not in names:
            raise AssertionError(f"{command.name} has no option {option}")


CASES = sorted(set(documented_commands()))


def test_the_documents_name_commands() -> None:
    assert len(CASES) > 20  # the pattern still finds them


@pytest.mark.parametrize(("where", "words"), CASES, ids=[c[0][:90] for c in CASES])
def test_a_documented_command_exists(where: str, words: str) -> None:
    # Placeholders (…, ID, "…") are arguments; only commands and options are checked.
    parts = global_options_removed(shlex.split(words.replace("…", "x"), comments=True))
    command, arguments = resolve(parts)
    check_options(command, arguments)


def test_a_command_that_is_not_there_is_found() -> None:
    with pytest.raises(AssertionError, match="no command 'nonsense'"):
        resolve(["issue", "nonsense"])
    command, arguments = resolve(["issue", "show", "3", "--nonsense"])
    with pytest.raises(AssertionError, match="no option --nonsense"):
        check_options(command, arguments)


def test_the_documents_exist() -> None:
    assert all(Path(document).is_file() for document in DOCUMENTS)

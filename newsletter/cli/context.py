"""The typed object every command receives: settings, and the store opened on first use."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ..config import Settings
from ..store import Store

if TYPE_CHECKING:
    from rich.console import Console

    from ..publisher import Publisher


#: Wide enough for any value a table holds; rich still sizes a table to its contents.
PIPE_WIDTH = 1_000_000


def output_console() -> Console:
    """Rich output sized to the terminal; into a pipe or a file, tables are as wide as their
    values, since a script or ``grep`` needs whole addresses, not ``unsubsc…``."""
    from rich.console import Console  # rich is for tables: `collect` and `worker` print none

    console = Console()
    if console.is_terminal:
        return console
    return Console(width=PIPE_WIDTH)


@dataclass
class AppContext:
    settings: Settings
    _console: Console | None = None
    _store: Store | None = None
    _publisher: Publisher | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = output_console()
        return self._console

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.database_url)
        return self._store

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            from ..publisher import Publisher

            self._publisher = Publisher(self.settings, self.store)
        return self._publisher

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext)


@contextmanager
def reported_below(logger_name: str) -> Iterator[None]:
    """Hold back a module's warnings while a command gathers a report that restates each of
    them: a failing source is printed once, in the report, not also as a log line. Its
    errors still show. (The daemon prints no report: there the log lines are the record.)"""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def echo_json(data: Any) -> None:
    """Machine-readable output for ``--json``: stable keys, ISO dates."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

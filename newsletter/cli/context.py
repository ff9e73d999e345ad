"""The typed object every command receives: settings, and the store opened on first use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from ..config import Settings
from ..store import Store

if TYPE_CHECKING:
    from ..publisher import Publisher


@dataclass
class AppContext:
    settings: Settings
    console: Console = field(default_factory=Console)
    _store: Store | None = None
    _publisher: Publisher | None = None

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


def echo_json(data: Any) -> None:
    """Machine-readable output for ``--json``: stable keys, ISO dates."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

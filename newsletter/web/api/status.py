"""What ``newsletter status --json`` shows, for ``GET /api/v1/status``: the gathering is
``schedule.status``'s, as the command's and the desk's status page are."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ...schedule.status import gather as status_report
from ...store import Store


def gather(settings: Settings, store: Store) -> dict[str, Any]:
    return status_report(settings, store).summary()

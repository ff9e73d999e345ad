"""What a send did, as the engine and its helpers count it, for the command line and logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: Told ``0`` when sending starts (the audience is frozen), then each batch's size as sent.
Progress = Callable[[int], None]


@dataclass
class SendReport:
    issue_id: int
    batches_sent: int = 0
    recipients_sent: int = 0
    recipients_failed: int = 0
    unknown_batches: int = 0
    retries: int = 0
    paused: str = ""
    final_state: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    #: Set when the engine handed the issue back instead of waiting: the epoch second at
    #: which its next pending batch may be tried.
    retry_at: float | None = None
    #: Recipients each helper process sent (``fanout``); the totals above include them.
    by_helpers: list[int] = field(default_factory=list)

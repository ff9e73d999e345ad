"""The issue state machine: which moves are legal, stated once."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import IssueStateError
from ..models import IssueState as S

TRANSITIONS: Mapping[S, frozenset[S]] = {
    S.DRAFT: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.DRAFT, S.SENDING, S.PAUSED, S.CANCELLED}),
    S.SENDING: frozenset({S.SENT, S.PARTIALLY_FAILED, S.PAUSED, S.CANCELLED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.PARTIALLY_FAILED: frozenset({S.QUEUED}),
    S.SENT: frozenset({S.QUEUED}),  # only to resend unknown batches on request
    S.CANCELLED: frozenset(),
}

#: States in which an issue's content may still be edited.
EDITABLE = frozenset({S.DRAFT})


def check(issue_id: int, current: S, target: S) -> None:
    """Raise ``IssueStateError`` unless ``current`` → ``target`` is allowed."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final state)"
        raise IssueStateError(
            f"issue {issue_id} is {current}; it cannot become {target} (from {current}: {allowed})"
        )

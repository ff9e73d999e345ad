"""The local outbox: one RFC 5322 ``.eml`` file per recipient, a folder per issue.

Nothing leaves the machine, so it is the default for a fresh clone, for demos and for
checking an issue by eye. A file's name is fixed by the issue and the recipient, and it is
written to a temporary name and renamed, so a resent batch overwrites rather than duplicates.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..models import DeliveryStatus
from ..render.message import make_message_id, message_bytes
from .base import BatchResult, OutgoingBatch, PreparedIssue, Provider, RecipientResult, mime_message

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class OutboxProvider(Provider):
    name = "outbox"
    max_batch = 500
    idempotent = True

    @property
    def root(self) -> Path:
        return self.settings.outbox_path

    def folder(self, issue: PreparedIssue) -> Path:
        prefix = "test-" if issue.is_test else ""
        return self.root / f"{prefix}issue-{issue.issue_id}-{issue.list_id}"

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        folder = self.folder(issue)
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for recipient in batch.recipients:
            message_id = make_message_id(issue.message_id_domain)
            copy = issue.merge(recipient.values)
            message = mime_message(issue, copy, recipient.to_header, message_id)
            name = f"{recipient.recipient_id:08d}-{_UNSAFE.sub('_', recipient.email)}.eml"
            _write_atomically(folder / name, message_bytes(message))
            results.append(RecipientResult(recipient.email, DeliveryStatus.SENT, message_id))
        return BatchResult(results)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

"""The local outbox: one RFC 5322 ``.eml`` file per recipient, a folder per issue (and one
per list for the one-off messages to readers, ``readers-<list>``, a file per message).

Nothing leaves the machine, so it is the default for a fresh clone, for demos and for
checking an issue by eye. A file's name is fixed by the issue and the recipient, and it is
written to a temporary name and renamed, so a resent batch overwrites rather than duplicates.
A temporary file names the process writing it; one left by a process that died mid-write
(SIGKILL, power loss) is removed the next time a sender writes to that folder.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ...config import Settings
from ...errors import ProviderAuthError
from ...models import DeliveryStatus
from ...processes import pid_alive
from ...render.message import make_message_id, message_bytes
from ..base import (
    BatchRecipient,
    BatchResult,
    OutgoingBatch,
    PreparedIssue,
    Provider,
    RecipientResult,
    mime_message,
)
from ..oneoff import ONE_OFF_ISSUE

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
TEMP_PREFIX = ".tmp-"


class OutboxProvider(Provider):
    name = "outbox"
    max_batch = 500
    idempotent = True

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._swept: set[Path] = set()

    @property
    def root(self) -> Path:
        return self.settings.outbox_path

    def folder(self, issue: PreparedIssue) -> Path:
        if issue.issue_id == ONE_OFF_ISSUE:  # a reader's confirmation, welcome or notice
            return self.root / f"readers-{issue.list_id}"
        prefix = "test-" if issue.is_test else ""
        return self.root / f"{prefix}issue-{issue.issue_id}-{issue.list_id}"

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        folder = self.folder(issue)
        try:
            return self._write_batch(folder, issue, batch)
        except OSError as exc:
            # A folder that cannot be written stays so for every batch: pause the issue
            # with the reason. Files already written are overwritten when it resumes.
            raise ProviderAuthError(
                f"cannot write to {exc.filename or folder}: {exc.strerror or exc} "
                "(check NEWSLETTER_OUTBOX_DIR and the folder, then resume the issue)",
                provider=self.name,
            ) from exc

    def _write_batch(
        self, folder: Path, issue: PreparedIssue, batch: OutgoingBatch
    ) -> BatchResult:
        folder.mkdir(parents=True, exist_ok=True)
        if folder not in self._swept:
            _remove_orphans(folder)
            self._swept.add(folder)
        results = []
        for recipient in batch.recipients:
            message_id = make_message_id(issue.message_id_domain)
            copy = issue.merge(recipient.values)
            message = mime_message(issue, copy, recipient.to_header, message_id)
            _write_atomically(folder / _file_name(recipient), message_bytes(message))
            results.append(RecipientResult(recipient.email, DeliveryStatus.SENT, message_id))
        return BatchResult(results)


def _file_name(recipient: BatchRecipient) -> str:
    """``00000042-ann@example.org.eml``; a test send's recipients (ids -1, -2 …, outside the
    ledger) get ``test-1-…``, since a name starting with a dash reads as a shell option."""
    address = _UNSAFE.sub("_", recipient.email)
    if recipient.recipient_id < 0:
        return f"test-{-recipient.recipient_id}-{address}.eml"
    return f"{recipient.recipient_id:08d}-{address}.eml"


def _write_atomically(path: Path, data: bytes) -> None:
    prefix = f"{TEMP_PREFIX}{os.getpid()}-"
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _remove_orphans(folder: Path) -> None:
    """Delete temporary files whose writing process is gone (they were never renamed)."""
    for temp in folder.glob(f"{TEMP_PREFIX}*.eml"):
        pid = temp.name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or not pid_alive(int(pid)):
            temp.unlink(missing_ok=True)

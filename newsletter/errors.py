"""Every error the pipeline raises on purpose.

    NewsletterError
    ├── ConfigError (+ ValueError)         a setting, a lists file or a template option is wrong
    │   └── ListError                      a subscribers file: carries file, line and reason
    ├── SourceError                        a feed or article folder could not be read or parsed
    ├── RenderError                        a template failed (typo, missing variable, bad markup)
    ├── MessageError (+ ValueError)        a header value cannot be put in an email (CR/LF, size)
    ├── StoreError                         the database refused or is at the wrong migration
    ├── IssueStateError                    an illegal transition (queue a sent issue, …)
    │   └── IssueMovedOnError              sending one that another sender finished or paused
    ├── NotFoundError (+ LookupError)      no issue, list or article with that id
    ├── LintError                          pre-send checks found errors; carries the findings
    ├── LockError                          another scheduler already holds the lock
    └── ProviderError                      a delivery API failed; carries provider, status, body
        ├── TransientProviderError         retry later (429, 5xx, no connection)
        ├── UnknownOutcomeError            the request may or may not have been acted on
        ├── PermanentProviderError         the request itself is wrong; retrying will not help
        └── ProviderAuthError              credentials, account or outbox folder refused: pause

Third-party exceptions are translated where they enter (`raise ... from exc`), so callers
only ever catch these. The CLI catches `NewsletterError` once, prints ``Error: …`` and exits 1.
"""

from __future__ import annotations

from pathlib import Path


class NewsletterError(Exception):
    """Base of every error raised on purpose by this package."""


class ConfigError(NewsletterError, ValueError):
    """A setting or configuration file is wrong."""


class ListError(ConfigError):
    """A row or key of a subscribers file is wrong; ``str()`` reads ``file:line: reason``."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class SourceError(NewsletterError):
    """A source could not be fetched or parsed."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class RenderError(NewsletterError):
    """A template could not be rendered."""


class MessageError(NewsletterError, ValueError):
    """A value cannot be placed in an email header or body."""


class StoreError(NewsletterError):
    """The database could not be used."""


class IssueStateError(NewsletterError):
    """An issue was asked to move to a state it cannot reach from where it is."""


class IssueMovedOnError(IssueStateError):
    """Asked to send an issue that is no longer queued or sending: finished, cancelled or
    paused, usually by another sender since it was found due. Nothing is left to do."""


class NotFoundError(NewsletterError, LookupError):
    """No object with that id."""


class LintError(NewsletterError):
    """Pre-send checks found errors that block queueing."""

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        super().__init__("pre-send checks failed:\n" + "\n".join(f"  - {f}" for f in findings))


class LockError(NewsletterError):
    """A lock that only one process may hold is held by another."""


class ProviderError(NewsletterError):
    """A delivery provider refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.body = body[:2000]
        self.retry_after = retry_after
        parts = [p for p in (provider, f"HTTP {status}" if status else "", message) if p]
        super().__init__(": ".join(parts))


class TransientProviderError(ProviderError):
    """Retry later; nothing was sent."""


class UnknownOutcomeError(ProviderError):
    """The request reached the provider but no answer came back: it may have been sent."""


class PermanentProviderError(ProviderError):
    """The request is wrong and will stay wrong."""


class ProviderAuthError(ProviderError):
    """Credentials, plan or account refused, or an outbox folder that cannot be written:
    the same for every batch, so stop sending (pause) and tell the operator."""

"""A batch's values for templates that the provider merges (Mailgun, SendGrid, SES, Brevo).

The subject, the text part and the headers take a field as it is (``f``); the HTML part
takes it HTML-escaped (``h_f``). Most values (signed URLs, most names) hold nothing to
escape, and then both spellings would carry the same text. So a field whose values need
no escaping for anyone in the batch travels once, plain, and the batch's HTML refers to
that: in a 1,000-recipient Mailgun batch this leaves out the second copy of every
unsubscribe URL, about a third of the request. One recipient whose value does need
escaping brings ``h_f`` back for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import RenderError
from ..render.merge import escape_html, needs_escaping
from .base import BatchRecipient, OutgoingBatch, PreparedIssue

Spelling = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class BatchVariables:
    """Each recipient's values, and the HTML fields sent escaped (``h_f``) in this batch."""

    per_recipient: list[dict[str, str]]
    escaped: frozenset[str]

    def html(self, issue: PreparedIssue, plain: Spelling, escaped: Spelling) -> str:
        """The issue's HTML with this batch's markers, in the provider's syntax."""
        return issue.html.with_markers(lambda f: escaped(f) if f in self.escaped else plain(f))


def batch_variables(
    issue: PreparedIssue, batch: OutgoingBatch, key: Spelling = str
) -> BatchVariables:
    """``key`` spells a variable's name the provider's way (SendGrid's ``%nl.f%``)."""
    html_fields, recipients = issue.html.field_names, batch.recipients
    try:
        # One search over the batch's values of a field: joining cannot make or hide a
        # character that needs escaping, and it is one call instead of one per recipient.
        escaped = frozenset(
            f for f in html_fields if needs_escaping("".join([r.values[f] for r in recipients]))
        )
        plain = [(f, key(f)) for f in issue.plain_fields | (html_fields - escaped)]
        hidden = [(f, key(f"h_{f}")) for f in escaped]
        same = _unchanged_keys(plain, hidden)
        per_recipient = [
            dict(r.values) if r.values.keys() == same else _variables(r.values, plain, hidden)
            for r in recipients
        ]
    except KeyError:  # a recipient lacks a field: say who and which
        raise _missing(recipients, issue.field_names) from None
    return BatchVariables(per_recipient, escaped)


def _unchanged_keys(plain: list[tuple[str, str]], hidden: list[tuple[str, str]]) -> set[str]:
    """The keys of values that travel as they are, so that a recipient's values with exactly
    these keys are copied whole (in C) rather than key by key; none if some are renamed."""
    if hidden or any(f != name for f, name in plain):
        return set()
    return {f for f, _ in plain}


def _missing(recipients: Sequence[BatchRecipient], fields: frozenset[str]) -> RenderError:
    for recipient in recipients:
        if not fields <= recipient.values.keys():
            missing = sorted(fields - recipient.values.keys())[0]
            return RenderError(f"recipient {recipient.recipient_id}: no value for {missing!r}")
    return RenderError("a recipient has no value for a field of the templates")


def _variables(
    values: Mapping[str, str], plain: list[tuple[str, str]], hidden: list[tuple[str, str]]
) -> dict[str, str]:
    out = {name: values[f] for f, name in plain}
    if hidden:
        out.update({name: escape_html(values[f]) for f, name in hidden})
    return out

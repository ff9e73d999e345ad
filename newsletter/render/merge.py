"""Per-recipient merge of an issue rendered once.

Templates render recipient values as markers (``%%nl:name%%``). ``MergeTemplate`` splits the
rendered text on them once; each copy is then a single ``''.join`` — no re-rendering, no
re-inlining per recipient. The same split turns the markers into a provider's own merge
syntax (Mailgun's ``%recipient.x%``, SendGrid substitutions, SES ``{{x}}``) for providers
that merge on their side.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import RenderError

MARKER_RE = re.compile(r"%%nl:([a-z][a-z0-9_]*)%%")


def escape_html(value: str) -> str:
    """``html.escape(value, quote=True)``. Most merge values (addresses, names, signed URLs)
    hold nothing to escape, and looking for that costs a third of escaping."""
    return html.escape(value, quote=True) if needs_escaping(value) else value


def needs_escaping(value: str) -> bool:
    """Whether ``escape_html`` would change ``value``: one ``in`` per character that
    ``html.escape`` replaces. Each is a memchr; over a batch's 1,000 unsubscribe URLs joined
    (110 KB) the five took 8 µs, a regular expression's character class 560 µs."""
    return "&" in value or "<" in value or ">" in value or '"' in value or "'" in value


def marker(field: str) -> str:
    """The text a template writes where ``field`` of the recipient goes."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", field):
        raise RenderError(f"invalid merge field name {field!r}")
    return f"%%nl:{field}%%"


@dataclass(frozen=True, slots=True)
class MergeTemplate:
    """Literal chunks with field names between them: ``chunks[0] f0 chunks[1] f1 … chunks[-1]``."""

    chunks: tuple[str, ...]
    fields: tuple[str, ...]
    escape: bool = False
    #: The distinct fields, computed once: providers consult it for every recipient.
    field_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(self.fields))

    @classmethod
    def parse(cls, text: str, *, escape: bool = False) -> MergeTemplate:
        parts = MARKER_RE.split(text)
        return cls(tuple(parts[0::2]), tuple(parts[1::2]), escape)

    def render(self, values: Mapping[str, str]) -> str:
        """This template with ``values`` put in (HTML-escaped when ``escape``)."""
        try:
            filled = [values[f] for f in self.fields]
        except KeyError as exc:
            raise RenderError(f"no value for merge field {exc.args[0]!r}") from None
        if self.escape:
            filled = [escape_html(v) for v in filled]
        out = [self.chunks[0]]
        for value, chunk in zip(filled, self.chunks[1:], strict=True):
            out.append(value)
            out.append(chunk)
        return "".join(out)

    def with_markers(self, syntax: Callable[[str], str]) -> str:
        """The text with each field written in another merge syntax, e.g. ``%recipient.x%``."""
        plain = MergeTemplate(self.chunks, self.fields)
        return plain.render({f: syntax(f) for f in self.fields})

"""What the desk's forms share: a refusal that names its field, and reading form values."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import FormData

#: The longest value a text field of the desk takes; a longer one is cut, not an error.
FIELD_LIMIT = 2000


class FieldError(Exception):
    """Bad input in one field: the page shows "<label>: <message>" and marks the field."""

    def __init__(self, field: str, label: str, message: str) -> None:
        super().__init__(f"{label}: {message}")
        self.field = field
        self.label = label
        self.message = message


def text(form: FormData | None, name: str, limit: int = FIELD_LIMIT) -> str:
    """A text field's value, stripped; empty when missing or not text (a file upload)."""
    value = form.get(name) if form is not None else None
    return value.strip()[:limit] if isinstance(value, str) else ""


def ticked(form: FormData | None, name: str) -> bool:
    return bool(text(form, name))


def ids(form: FormData | None, name: str, label: str, limit: int = 500) -> list[int]:
    """The whole numbers ticked in ``name`` (checkboxes), in the page's order, each once."""
    values = [v for v in (form.getlist(name) if form is not None else []) if isinstance(v, str)]
    if len(values) > limit:
        raise FieldError(name, label, f"choose at most {limit}")
    chosen: list[int] = []
    for value in values:
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise FieldError(name, label, f"{value[:20]!r} is not an id")
        if int(value) not in chosen:
            chosen.append(int(value))
    return chosen


def web_link(url: str) -> str | None:
    """``url`` when it is an http(s) link a page may offer, else None (shown as text)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None

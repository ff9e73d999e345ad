"""Small parsing helpers the fake APIs share."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import getaddresses
from typing import Any

from .core import FakeRequest


def json_body(request: FakeRequest) -> Any:
    """The parsed JSON body; ``ValueError`` when it is not JSON, or not labelled as JSON
    (each of these APIs asks for ``Content-Type: application/json``)."""
    media_type = request.header("content-type").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ValueError(f"Content-Type must be application/json, not {media_type or 'none'!r}")
    return json.loads(request.body.decode("utf-8"))


def bearer(request: FakeRequest) -> str | None:
    raw = request.header("authorization")
    if not raw:
        return None
    scheme, _, token = raw.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


#: One address, bare or as ``Name <addr>``, and a list of them: the common forms, read at C
#: speed without the stdlib's general (and, for 1,000 recipients, slow) address parser.
_PHRASE_ADDRESS = r'[^",<>]*<([^<>\s,]+@[^<>\s,]+)>'
_BARE_ADDRESS = r'([^<>\s,"]+@[^<>\s,"]+)'
_ONE = rf"\s*(?:{_PHRASE_ADDRESS}|{_BARE_ADDRESS})\s*"
#: One comma-separated part: a match never holds a comma but its leading one, so a list
#: whose every part matched gives one match more than it has commas.
_EACH = re.compile(rf"(?:^|,){_ONE}(?=,|$)")


def addresses(raw: str | list[Any]) -> list[str]:
    """Bare addresses from ``"Name <a@x>, b@y"`` or a list of such strings."""
    items = raw if isinstance(raw, list) else [raw]
    found: list[str] = []
    for item in map(str, items):
        found += _addresses_in(item)
    return found


def _addresses_in(item: str) -> list[str]:
    # Quoted names (which may hold commas), comments and groups need the email package's
    # parser, about 15 µs an address; the plain forms are checked and split in one pass.
    found = _EACH.findall(item)
    if len(found) == item.count(",") + 1:
        return [in_angles or bare for in_angles, bare in found]
    return [addr for _, addr in getaddresses([item]) if addr]


def substitute(text: str, pattern: re.Pattern[str], lookup: Callable[[str], str | None]) -> str:
    """``text`` with every match of ``pattern`` (group 1 = name) replaced; unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        return match.group(0) if value is None else value

    return pattern.sub(replace, text)


def string_values(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items()}


def new_id() -> str:
    return str(uuid.uuid4())


def timestamp() -> float:
    return time.time()

"""The name a reader is greeted by ("Hi Ann,"), from the name in their member file.

Names come as people typed them: ``“Sam” Lee``, ``Dr. Jane Smith``, ``Smith, John``,
``JOHN SMITH``, ``🙂``. The greeting is the first given name with the quotes and punctuation
around it taken off; a name that starts with a title keeps it, with the family name, since
whoever wrote it asked to be addressed formally (``Dr. Smith``); a name in capitals only is
written in the usual case. A name that gives no word with a letter in it (empty, emoji,
digits, punctuation) is greeted with ``NEUTRAL_GREETING``: "Hi there,".

Kept free of heavy imports: a send computes this for every recipient.
"""

from __future__ import annotations

import unicodedata

#: The greeting where the reader's name is unknown or unusable ("Hi there,").
NEUTRAL_GREETING = "there"

#: Titles (lower case, without the full stop) that ask for "Title Family-name".
HONORIFICS = frozenset(
    {"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "sir", "dame", "rev", "fr"}
)

# The titles as they are usually typed, for the quick path's one set look-up.
_TITLE_WORDS = frozenset(t for h in HONORIFICS for t in (h, h.title(), h.upper()))

#: Words after a family name that are not it (``Dr. Martin King Jr.``).
SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})

# Letters (L*), combining marks (M*) and digits (N*) belong to a name; everything else at
# either end of a word (quotes, brackets, commas, emoji) does not.
_NAME_CATEGORIES = ("L", "M", "N")


def greeting_name(name: str) -> str:
    """The name to greet a reader by; ``NEUTRAL_GREETING`` when ``name`` yields none."""
    # Most names start with a plain word: that costs a tenth of the general path, which
    # matters over a million recipients.
    parts = name.split(maxsplit=1)
    if not parts:
        return NEUTRAL_GREETING
    first = parts[0]
    if first.isalpha() and "," not in name and not name.isupper() and first not in _TITLE_WORDS:
        return first
    words = [w for w in (_trimmed(word) for word in _given_first(name).split()) if w]
    if words and _is_honorific(words[0]):
        title = _cased(_original_title(name, words[0]), name)
        family = [w for w in words[1:] if w.casefold() not in SUFFIXES]
        return f"{title} {_cased(family[-1], name)}" if family else NEUTRAL_GREETING
    return _cased(words[0], name) if words else NEUTRAL_GREETING


def _given_first(name: str) -> str:
    """``Smith, John`` → ``John Smith``; ``Jane Smith, PhD`` → ``Jane Smith``.

    After a comma come the given names (a list sorted by family name), unless it holds only
    qualifications (``PhD``, ``Jr.``) or nothing, which are dropped."""
    before, comma, after = name.partition(",")
    if not comma:
        return name
    given = [w for w in (_trimmed(word) for word in after.replace(",", " ").split()) if w]
    if given and any(w.casefold() not in SUFFIXES for w in given):
        return f"{after.replace(',', ' ')} {before}"
    return before


def _trimmed(word: str) -> str:
    """``word`` without the non-letters at its ends; empty if it holds no letter at all."""
    start, end = 0, len(word)
    while start < end and not _is_name_char(word[start]):
        start += 1
    while end > start and not _is_name_char(word[end - 1]):
        end -= 1
    trimmed = word[start:end]
    return trimmed if any(unicodedata.category(c).startswith("L") for c in trimmed) else ""


def _is_name_char(char: str) -> bool:
    return unicodedata.category(char).startswith(_NAME_CATEGORIES)


def _is_honorific(word: str) -> bool:
    return word.casefold() in HONORIFICS


def _original_title(name: str, title: str) -> str:
    """The title as written, with its full stop if it had one (``Dr.`` stays ``Dr.``)."""
    for word in name.split():
        if _trimmed(word) == title:
            return title + "." if word.rstrip().endswith(f"{title}.") else title
    return title


def _cased(word: str, name: str) -> str:
    """A name typed in capitals only (``JOHN SMITH``) in the usual case; others as written,
    since ``McDonald``, ``danah`` or ``JP`` among lower-case letters are meant that way."""
    return word.title() if name.isupper() else word

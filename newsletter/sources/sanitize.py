"""Article HTML made safe for an email: one allow-list, absolute links, images that fit.

Feed content and rendered Markdown both pass through ``clean_html`` before they are stored,
so templates may print ``content_html`` unescaped. nh3 (ammonia) does the sanitising; this
module only adds what an email needs on top: relative URLs resolved against the article's
address (a mail client has no base URL) and images that cannot push the layout wider than
the column, including in clients that ignore CSS ``max-width``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

#: Width of the content column the templates lay articles into.
MAX_IMAGE_WIDTH = 600

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "div", "span",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "a", "em", "strong", "b", "i", "u", "s", "del", "ins", "sub", "sup", "small", "mark",
        "abbr", "cite", "q", "kbd", "samp", "var", "time",
        "ul", "ol", "li", "dl", "dt", "dd",
        "blockquote", "pre", "code",
        "img", "figure", "figcaption",
        "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
    }
)  # fmt: skip

ALLOWED_ATTRIBUTES = {
    "*": {"lang", "dir", "title"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "time": {"datetime"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
}

#: Removed together with everything inside them: their text is code, UI or fallback noise.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "template", "noscript", "head", "title", "meta", "link", "base",
        "iframe", "frame", "frameset", "noframes", "object", "embed", "applet", "noembed",
        "form", "input", "button", "select", "textarea", "option", "optgroup", "datalist",
        "svg", "math", "canvas", "audio", "video", "xmp", "plaintext",
    }
)  # fmt: skip

#: ``data:`` is refused even for images: most mail clients block it and it hides payloads.
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
_IMG_TAG = re.compile(r'<img((?:\s+[a-z-]+="[^"]*")*)\s*/?>')
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')
_IMAGE_WITH_SOURCE = re.compile(r'<img\s[^>]*\bsrc="[^"]+"')
_BLOCK_TAGS = frozenset(
    {"p", "br", "div", "li", "dt", "dd", "tr", "td", "th", "blockquote", "pre", "figcaption",
     "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "ul", "ol", "dl", "figure", "caption"}
)  # fmt: skip


def clean_html(html_text: str, base_url: str, *, max_image_width: int = MAX_IMAGE_WIDTH) -> str:
    """Sanitise an article fragment for email; relative ``href``/``src`` resolve on ``base_url``."""
    if not html_text.strip():
        return ""
    cleaned = nh3.clean(
        html_text,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_url_resolver(base_url),
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener",
        strip_comments=True,
    )
    return _IMG_TAG.sub(lambda match: _fit_image(match.group(1), max_image_width), cleaned)


def html_to_summary(html_text: str, max_chars: int = 280) -> str:
    """Plain text of a fragment, whitespace collapsed, cut at a word boundary with ``…``."""
    collector = _TextCollector()
    collector.feed(clean_html(html_text, ""))
    collector.close()
    text = " ".join("".join(collector.parts).split())
    return truncate_text(text, max_chars)


def shows_something(html_text: str) -> bool:
    """Whether a fragment, once sanitised, shows a reader anything: some text or an image."""
    cleaned = clean_html(html_text, "")
    has_text = bool(html_to_summary(cleaned, len(cleaned) + 1))
    return has_text or _IMAGE_WITH_SOURCE.search(cleaned) is not None


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` if it fits, else its longest whole-word prefix that fits with an ellipsis."""
    if len(text) <= max_chars:
        return text
    limit = max(max_chars - 1, 0)  # room for the ellipsis
    cut = text[:limit]
    if not text[limit].isspace():  # the cut fell inside a word: drop that word's start
        cut = cut.rpartition(" ")[0] or cut
    return cut.rstrip(" ,;:.-") + "…"


def web_url(value: str, base_url: str = "") -> str:
    """``value`` resolved against ``base_url``; ``""`` unless the result is http(s).

    For addresses a template puts in ``href``/``src`` itself (article links, lead images),
    which never pass through ``clean_html``.
    """
    if not value.strip():
        return ""
    absolute = urljoin(base_url, value.strip()) if base_url else value.strip()
    parts = urlsplit(absolute)
    return absolute if parts.scheme.lower() in {"http", "https"} and parts.netloc else ""


def text_to_html(text: str) -> str:
    """Plain text as escaped paragraphs; blank lines separate them."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _url_resolver(base_url: str) -> Callable[[str, str, str], str | None]:
    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        absolute = urljoin(base_url, value.strip()) if base_url else value.strip()
        # nh3 checks schemes before this filter runs, so the joined result is checked again.
        scheme = urlsplit(absolute).scheme.lower()
        return absolute if scheme in URL_SCHEMES or not scheme else None

    return resolve


def _fit_image(attribute_text: str, max_width: int) -> str:
    attributes = dict(_ATTRIBUTE.findall(attribute_text))
    if not attributes.get("src"):
        return ""  # its URL was unsafe and removed: an image with no source is only a hole
    attributes.setdefault("alt", "")
    width, height = _fitted_size(attributes.get("width"), attributes.get("height"), max_width)
    attributes["width"] = str(width)
    if height is None:
        attributes.pop("height", None)
    else:
        attributes["height"] = str(height)
    attributes["style"] = "max-width:100%;height:auto"
    rendered = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return f"<img{rendered}>"


def _fitted_size(width: str | None, height: str | None, max_width: int) -> tuple[int, int | None]:
    """Pixel width capped at ``max_width``; the height scaled with it, or dropped if unknown."""
    original_width = _pixels(width)
    original_height = _pixels(height)
    if original_width is None:
        # Outlook sizes images by the attribute alone; an unknown width may be anything.
        return max_width, None
    if original_width <= max_width:
        return original_width, original_height
    if original_height is None:
        return max_width, None
    return max_width, max(1, round(original_height * max_width / original_width))


def _pixels(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*(?:px)?\s*", value)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1))


class _TextCollector(HTMLParser):
    """Text content of sanitised HTML, with a space wherever a block starts or ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

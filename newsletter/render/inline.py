"""CSS inlining with premailer: stylesheet rules copied into ``style=""`` attributes.

Many mail clients drop ``<style>`` or ignore it, so every rule that can be inlined is. The
``<style>`` block stays for what cannot (``@media`` queries, ``:hover``), with ``!important``
kept inside it: the responsive overrides must beat the inlined styles (premailer strips
``!important`` by default). Nothing is fetched: no network, no local files.

Why a premailer subclass: premailer memoises parsed stylesheets in one process-wide LFU cache
of 128 entries, shared with every compiled selector and declaration block, so a stylesheet
of more than about 60 rules fills it within one call; the parsed sheet is evicted and
re-parsed (with cssutils, slowly) on every call after. Its only knob is an environment
variable read when premailer is imported (``PREMAILER_CACHE_MAXSIZE``), which this package
does not set: configuration is read in one place, and a module-level import side effect
would depend on import order. Instead ``_SheetCachingPremailer`` keeps the parsed rules of
each stylesheet itself, which also keeps the sheet out of the shared cache.
``bench/render.py`` measures both.

Premailer also copies CSS sizes into ``width``/``height`` attributes, overwriting those the
template wrote: an image styled ``width:100%; height:auto`` became ``width="100%"
height="auto"``. Outlook for Windows sizes images by that attribute (a percentage of what it
does not know) and ``height="auto"`` is not HTML, so ``_ImagesKeepTheirSize`` leaves the
attributes of ``<img>`` as written (pixels, from the template or the sanitizer) and the
fitting to narrow screens to CSS.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from lxml import etree
from premailer.premailer import ExternalFileLoadingError, Premailer, PremailerError

from ..errors import RenderError

#: cssutils logs a warning for each property it does not know (``mso-*``, ``-webkit-*``…),
#: which email CSS is full of; errors in the stylesheet are still logged.
CSSUTILS_LOG_LEVEL = logging.ERROR

#: Distinct stylesheets whose parsed rules one inliner keeps (templates reload when edited).
SHEET_CACHE_SIZE = 16

_PREMAILER_OPTIONS: dict[str, Any] = {
    "strip_important": False,
    "keep_style_tags": False,
    "remove_classes": False,
    "disable_validation": True,
    "allow_network": False,
    "allow_loading_external_files": False,
    "disable_link_rewrites": True,
    "exclude_pseudoclasses": True,
    "cssutils_logging_level": CSSUTILS_LOG_LEVEL,
}

_ParsedRules = tuple[list[Any], list[Any]]


class _ImagesKeepTheirSize(Premailer):
    """Premailer that does not turn CSS sizes into ``<img>`` attributes (see module doc)."""

    def _style_to_basic_html_attributes(
        self, element: Any, style_content: str, force: bool = False
    ) -> None:
        if element.tag == "img":
            return
        super()._style_to_basic_html_attributes(element, style_content, force)


class _SheetCachingPremailer(_ImagesKeepTheirSize):
    """Premailer that parses each distinct stylesheet once per instance (see module doc)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(cache_css_parsing=False, **options)
        self._sheets: OrderedDict[tuple[str, int], _ParsedRules] = OrderedDict()
        self._sheets_lock = threading.Lock()

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> _ParsedRules:
        key = (css_body, ruleset_index)
        # One lock around parsing too: cssutils is not safe to call from several threads.
        with self._sheets_lock:
            if key in self._sheets:
                self._sheets.move_to_end(key)
            else:
                self._sheets[key] = super()._parse_style_rules(css_body, ruleset_index)
                if len(self._sheets) > SHEET_CACHE_SIZE:
                    self._sheets.popitem(last=False)
            rules, leftover = self._sheets[key]
        return list(rules), list(leftover)


class Inliner:
    """Inlines the ``<style>`` blocks of whole HTML documents; reuse one per process."""

    def __init__(self, *, cache_stylesheets: bool = True) -> None:
        # Without the cache: premailer's own stylesheet handling, which bench/render.py times.
        factory = _SheetCachingPremailer if cache_stylesheets else _ImagesKeepTheirSize
        self._premailer = factory(**_PREMAILER_OPTIONS)

    def inline(self, document: str) -> str:
        """``document`` with its CSS inlined; unparseable markup or CSS → ``RenderError``."""
        if not document.strip():
            raise RenderError("CSS inlining failed: the template rendered an empty document")
        try:
            return str(self._premailer.transform(document, pretty_print=False))
        except (etree.LxmlError, ValueError, PremailerError, ExternalFileLoadingError) as exc:
            raise RenderError(f"CSS inlining failed: {exc}") from exc

"""The public pages' palette (``templates/web/web.css``) and the issue page's bars
(``archive_nav.NAV_STYLE``): every text colour on every background it is put on reaches
WCAG AA (4.5:1), in the light and the dark scheme. The browser walk checks the pages as
painted (axe-core's colour-contrast rule); this names the colours that fail.
"""

from __future__ import annotations

import pytest
import tinycss2

from newsletter.web.archive_nav import NAV_STYLE
from tests.test_render_contrast import AA_NORMAL_TEXT, WEB_CSS, contrast_ratio, parse_colour

#: (text, background) variables of web.css that are painted together.
WEB_PAIRS = [
    *((text, ground) for text in ("--text", "--muted", "--accent")
      for ground in ("--page", "--card")),
    ("--on-accent", "--accent"),
    ("--on-masthead", "--masthead"),
]


def declarations(rule: tinycss2.ast.QualifiedRule) -> dict[str, str]:
    found = {}
    for item in tinycss2.parse_blocks_contents(rule.content, skip_whitespace=True,
                                               skip_comments=True):
        if item.type == "declaration":
            found[item.name] = tinycss2.serialize(item.value).replace("!important", "").strip()
    return found


def rules_by_scheme(sheet: str) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """(selector, declarations) of the top level ("light") and of the dark block ("dark")."""
    found: dict[str, list[tuple[str, dict[str, str]]]] = {"light": [], "dark": []}
    for rule in tinycss2.parse_stylesheet(sheet, skip_whitespace=True, skip_comments=True):
        if rule.type == "qualified-rule":
            found["light"].append((tinycss2.serialize(rule.prelude).strip(), declarations(rule)))
        elif rule.type == "at-rule" and "dark" in tinycss2.serialize(rule.prelude):
            for inner in tinycss2.parse_rule_list(rule.content or [], True, True):
                if inner.type == "qualified-rule":
                    selector = tinycss2.serialize(inner.prelude).strip()
                    found["dark"].append((selector, declarations(inner)))
    return found


def ratio(text: str, ground: str) -> float:
    foreground, background = parse_colour(text), parse_colour(ground)
    assert foreground and background, (text, ground)
    return contrast_ratio(foreground[0], background[0])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_web_palette_reaches_aa_on_the_page_and_the_card(scheme: str) -> None:
    rules = rules_by_scheme(WEB_CSS.read_text())
    variables = {k: v for selector, found in rules["light"] if selector == ":root"
                 for k, v in found.items()}
    if scheme == "dark":
        variables |= {k: v for selector, found in rules["dark"] if selector == ":root"
                      for k, v in found.items()}
    failures = [f"{text} on {ground}: {ratio(variables[text], variables[ground]):.2f}:1"
                for text, ground in WEB_PAIRS
                if ratio(variables[text], variables[ground]) < AA_NORMAL_TEXT]
    assert failures == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_issue_bars_reach_aa(scheme: str) -> None:
    """Every colour the bars' rules of a scheme set, on the bars' background in it."""
    rules = rules_by_scheme(NAV_STYLE)[scheme]
    (ground,) = {found["background-color"] for _, found in rules if "background-color" in found}
    colours = {found["color"] for _, found in rules if "color" in found}
    assert len(colours) >= 2
    failures = [f"{c} on {ground}" for c in colours if ratio(c, ground) < AA_NORMAL_TEXT]
    assert failures == []


def test_the_check_finds_low_contrast() -> None:
    assert ratio("#8a857b", "#f2efe9") < AA_NORMAL_TEXT <= ratio("#5f5a53", "#f2efe9")

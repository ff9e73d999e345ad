"""The geometry of the report's charts, drawn as SVG by ``templates/desk/report.html``.

Everything is given as numbers for presentation attributes (``x``, ``width``, ``fill`` …):
the desk's policy allows no ``style`` attribute. Each status has a colour of at least 3:1
against the page in the light scheme (the ``fill`` here) and in the dark one (the
stylesheet's override of the status's class); every bar also carries its number as text,
so no colour has to be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Light-scheme fills, ≥ 3:1 on white (the stylesheet has the dark scheme's).
FILLS = {
    "sent": "#2e7d32", "delivered": "#2e7d32", "queued": "#1a5fb4", "pending": "#1a5fb4",
    "failed": "#c62828", "bounced-hard": "#c62828", "unknown": "#8f5600",
    "bounced-soft": "#8f5600", "suppressed": "#5f5f5f", "unsubscribed": "#5f5f5f",
    "complained": "#7b1fa2", "opened": "#00695c", "clicked": "#3949ab",
}
OTHER_FILL = "#5f5f5f"
#: The SVG's own units: its ``viewBox`` is this wide, scaled to the page's width.
#: About a phone's width, so that its text stays readable there.
WIDTH = 400
LABEL_WIDTH, VALUE_WIDTH, ROW, BAR = 118, 80, 30, 20


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    value: int
    y: int
    width: float
    fill: str
    label_y: int
    value_x: float


@dataclass(frozen=True, slots=True)
class BarChart:
    """Horizontal bars, one a row: the name at the left, the number after the bar."""

    bars: tuple[Bar, ...]
    height: int
    bar_x: int = LABEL_WIDTH
    width: int = WIDTH


def fill_of(name: str) -> str:
    return FILLS.get(name, OTHER_FILL)


def bar_chart(items: Sequence[tuple[str, int]]) -> BarChart:
    """Bars for ``items`` (name, number), scaled to the largest; a bar of a number above
    zero is at least a pixel wide, so that it shows."""
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    top = max((n for _, n in items), default=0) or 1
    bars = []
    for row, (name, value) in enumerate(items):
        width = max(room * value / top, 1.0) if value else 0.0
        y = row * ROW + (ROW - BAR) // 2
        bars.append(Bar(name, value, y, round(width, 1), fill_of(name), y + BAR - 5,
                        round(LABEL_WIDTH + width + 6, 1)))
    return BarChart(tuple(bars), max(len(items), 1) * ROW)


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    y: float
    height: float
    value: int


@dataclass(frozen=True, slots=True)
class Strip:
    """One event type over time: its columns, scaled to its own busiest bucket."""

    name: str
    total: int
    peak: int
    fill: str
    top: int
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Small multiples: a strip per event type seen, all on the same time axis."""

    strips: tuple[Strip, ...]
    column_width: float
    first: datetime
    last: datetime
    height: int
    strip_height: int
    axis_y: int
    width: int = WIDTH


STRIP_LABEL, STRIP_BARS, STRIP_GAP, AXIS = 22, 40, 14, 24


def timeline(
    starts: Sequence[datetime], series: Sequence[tuple[str, Sequence[int]]], width: timedelta
) -> Timeline | None:
    """``series``: (event type, its count per bucket); types without events are left out.
    None when there is nothing to draw."""
    shown = [(name, counts) for name, counts in series if any(counts)]
    if not starts or not shown:
        return None
    step = WIDTH / len(starts)
    strip_height = STRIP_LABEL + STRIP_BARS + STRIP_GAP
    strips = tuple(
        _strip(name, counts, index * strip_height, step) for index, (name, counts) in
        enumerate(shown)
    )
    axis_y = len(strips) * strip_height + 4
    return Timeline(strips, round(max(step - 2, 1.0), 2), starts[0], starts[-1] + width,
                    axis_y + AXIS, strip_height, axis_y + 16)


def _strip(name: str, counts: Sequence[int], top: int, step: float) -> Strip:
    peak = max(counts)
    base = top + STRIP_LABEL + STRIP_BARS
    columns = []
    for index, n in enumerate(counts):
        height = max(STRIP_BARS * n / peak, 1.0) if n else 0.0
        columns.append(Column(round(index * step + 1, 2), round(base - height, 2),
                              round(height, 2), n))
    return Strip(name, sum(counts), peak, fill_of(name), top, tuple(columns))

"""Small server-side SVG charts for the report pages: no JavaScript, no library, no CDN.

Each function takes plain data and returns safe SVG markup. Every label is escaped; the ``viewBox`` lets the
browser scale the chart to the width of a phone; ``role="img"`` with a ``<title>`` and an ``aria-label`` gives
screen readers a one-line summary. The page puts the same figures in a table below each chart.
"""

import math
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Plot area in viewBox units; the SVG scales to its container.
WIDTH = 600
HEIGHT = 220
MARGIN_LEFT = 52
MARGIN_RIGHT = 12
MARGIN_TOP = 28
MARGIN_BOTTOM = 44
# Line colours, distinguishable in greyscale as well (the table below carries the figures anyway).
LINE_COLOURS = ("#1f4e8c", "#c0392b", "#1d6b3a", "#7a4d00")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


def _number(value: float) -> str:
    """A figure as a chart label: whole numbers without decimals, others with one."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _open_svg(*, title: str, summary: str, width: int = WIDTH, height: int = HEIGHT, css: str = "chart") -> str:
    label = escape(f"{title}: {summary}" if summary else title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
    )


def _summary(values: Sequence[float | None], unit: str) -> str:
    present = [value for value in values if value is not None]
    if not present:
        return "no data"
    suffix = f" {unit}" if unit else ""
    return f"{len(present)} values from {_number(min(present))} to {_number(max(present))}{suffix}"


Tick = tuple[float, str]


def linear_ticks(top: float, *, fixed_top: float | None = None, label: Callable[[float], str] = _number) -> list[Tick]:
    """Round figures from 0 to at least ``top`` (about five of them), or 0 to ``fixed_top`` in quarters (a
    percentage: 0 to 100)."""
    if fixed_top is not None:
        return [(fixed_top * index / 4, label(fixed_top * index / 4)) for index in range(5)]
    top = top if top > 0 else 1.0
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [(step * index, label(step * index)) for index in range(math.ceil(top / step - 1e-9) + 1)]


# Durations a reader knows, for a logarithmic time axis: a median of minutes and a p90 of days share one
# chart and both stay readable.
DURATION_TICKS: tuple[Tick, ...] = (
    (10, "10 s"),
    (60, "1 min"),
    (5 * 60, "5 min"),
    (15 * 60, "15 min"),
    (3600, "1 h"),
    (4 * 3600, "4 h"),
    (86400, "1 d"),
    (7 * 86400, "1 w"),
    (30 * 86400, "30 d"),
)


def duration_ticks(values_seconds: Sequence[float | None]) -> list[Tick]:
    """The ``DURATION_TICKS`` that span these durations, for a logarithmic axis (at least 1 min to 1 h)."""
    present = [value for value in values_seconds if value is not None and value > 0]
    low, high = min(present, default=60.0), max(present, default=3600.0)
    first = max((index for index, (value, _) in enumerate(DURATION_TICKS) if value <= low), default=0)
    last = min(
        (index for index, (value, _) in enumerate(DURATION_TICKS) if value >= high), default=len(DURATION_TICKS) - 1
    )
    first, last = min(first, 1), max(last, 4)
    ticks = list(DURATION_TICKS[first : last + 1])
    if any(value is not None and value < ticks[0][0] for value in values_seconds):
        # Shorter waits (a touch within the minute) sit on the bottom line, which says so.
        ticks[0] = (ticks[0][0], f"≤{ticks[0][1]}")
    return ticks


class _Scale:
    """Maps a value to a y coordinate of the plot, linearly from 0 or logarithmically between the end ticks."""

    def __init__(self, ticks: Sequence[Tick], *, log: bool) -> None:
        self.low, self.high = ticks[0][0], ticks[-1][0]
        self.log = log

    def y(self, value: float) -> float:
        plot_bottom = HEIGHT - MARGIN_BOTTOM
        plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
        if self.log:
            value = min(max(value, self.low), self.high)
            share = (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            share = (value - self.low) / ((self.high - self.low) or 1.0)
        return plot_bottom - plot_height * min(max(share, 0.0), 1.0)


def _axis(*, ticks: Sequence[Tick], scale: _Scale, unit: str) -> str:
    """The y axis: a grid line and a figure at every tick, the baseline darker, the unit above."""
    parts = []
    for index, (value, text) in enumerate(ticks):
        y = scale.y(value)
        colour = "#5b6474" if index == 0 else "#d9dde5"
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" stroke="{colour}"'
            + ("" if index == 0 else ' stroke-dasharray="3 3"')
            + "/>"
            f'<text x="{MARGIN_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6474">'
            f"{escape(text)}</text>"
        )
    if unit:
        parts.append(f'<text x="4" y="{MARGIN_TOP - 12}" font-size="11" fill="#5b6474">{escape(unit)}</text>')
    return "".join(parts)


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> str:
    """Category labels under the plot, thinned to about ten so they do not overlap."""
    if not labels:
        return ""
    step = max(1, -(-len(labels) // 10))
    y = HEIGHT - MARGIN_BOTTOM + 16
    parts = []
    for index in range(0, len(labels), step):
        text = labels[index]
        short = text if len(text) <= 14 else text[:13] + "…"
        parts.append(
            f'<text x="{xs[index]:.1f}" y="{y}" text-anchor="middle" font-size="11" fill="#1d2330">'
            f"{escape(short)}</text>"
        )
    return "".join(parts)


def bar_chart(
    series: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    fixed_top: float | None = None,
    links: Sequence[str] | None = None,
) -> SafeString:
    """Vertical bars, one per (label, value) pair, on a zero baseline with round figures on the axis;
    ``fixed_top`` pins the scale (100 for a percentage). A bar with a link opens it."""
    values = [float(value) for _, value in series]
    out = [_open_svg(title=title, summary=_summary(values, unit))]
    ticks = linear_ticks(max(values, default=0.0), fixed_top=fixed_top)
    scale = _Scale(ticks, log=False)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    out.append(_axis(ticks=ticks, scale=scale, unit=unit))
    slot = plot_width / max(len(series), 1)
    bar = max(slot * 0.7, 1.0)
    xs = []
    for index, (label, value) in enumerate(series):
        top_y = scale.y(max(float(value), 0.0))
        x = MARGIN_LEFT + slot * index + (slot - bar) / 2
        xs.append(x + bar / 2)
        rect = (
            f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar:.1f}" height="{HEIGHT - MARGIN_BOTTOM - top_y:.1f}" '
            f'fill="{LINE_COLOURS[0]}"><title>{escape(label)}: {escape(_number(float(value)))}'
            f"{escape(' ' + unit if unit else '')}</title></rect>"
        )
        out.append(_linked(rect, links[index] if links else ""))
    out.append(_x_labels([label for label, _ in series], xs))
    out.append("</svg>")
    return mark_safe("".join(out))


def _linked(markup: str, href: str) -> str:
    return f'<a href="{escape(href)}">{markup}</a>' if href else markup


HBAR_ROW = 28
HBAR_LABEL_WIDTH = 230
HBAR_LABEL_CHARS = 34


def _label_lines(text: str) -> list[str]:
    """A category label in at most two lines that fit beside the bars; the full label is in the tooltip."""
    if len(text) <= HBAR_LABEL_CHARS:
        return [text]
    cut = text.rfind(" ", 0, HBAR_LABEL_CHARS + 1)
    cut = cut if cut > 0 else HBAR_LABEL_CHARS
    rest = text[cut:].strip()
    return [text[:cut].strip(), rest if len(rest) <= HBAR_LABEL_CHARS else rest[: HBAR_LABEL_CHARS - 1] + "…"]


def hbar_chart(
    series: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    fixed_top: float | None = None,
    value_labels: Sequence[str] | None = None,
    links: Sequence[str] | None = None,
) -> SafeString:
    """Horizontal bars, one row per (label, value) pair, with the whole label beside its bar (rules and reps
    have long names) and the figure at the bar's end; the chart grows with the rows. ``fixed_top`` pins the
    scale (100 for a percentage); a row with a link opens it."""
    values = [float(value) for _, value in series]
    height = MARGIN_TOP + HBAR_ROW * max(len(series), 1) + (44 if unit else 30)
    out = [_open_svg(title=title, summary=_summary(values, unit), height=height, css="chart chart-rows")]
    ticks = linear_ticks(max(values, default=0.0), fixed_top=fixed_top)
    left, right = HBAR_LABEL_WIDTH, WIDTH - MARGIN_RIGHT - 40
    top_value = ticks[-1][0] or 1.0
    bottom = MARGIN_TOP + HBAR_ROW * max(len(series), 1)
    for value, text in ticks:
        x = left + (right - left) * value / top_value
        stroke = "#5b6474" if value == 0 else "#d9dde5"
        out.append(
            f'<line x1="{x:.1f}" y1="{MARGIN_TOP - 4}" x2="{x:.1f}" y2="{bottom}" stroke="{stroke}"/>'
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="11" fill="#5b6474">'
            f"{escape(text)}</text>"
        )
    if unit:
        out.append(
            f'<text x="{(left + right) / 2:.1f}" y="{bottom + 30}" text-anchor="middle" font-size="11" '
            f'fill="#5b6474">{escape(unit)}</text>'
        )
    for index, (label, value) in enumerate(series):
        y = MARGIN_TOP + HBAR_ROW * index
        width = (right - left) * max(float(value), 0.0) / top_value
        shown = value_labels[index] if value_labels else _number(float(value))
        lines = _label_lines(label)
        first_y = y + HBAR_ROW / 2 + 4 - (6 if len(lines) == 2 else 0)
        label_svg = "".join(
            f'<tspan x="{left - 6}" y="{first_y + 12 * number:.1f}">{escape(line)}</tspan>'
            for number, line in enumerate(lines)
        )
        row = (
            f"<g><title>{escape(label)}: {escape(shown)}{escape(' ' + unit if unit and not value_labels else '')}"
            "</title>"
            f'<text text-anchor="end" font-size="12" fill="#1d2330">{label_svg}</text>'
            f'<rect x="{left}" y="{y + 5}" width="{max(width, 0.5):.1f}" height="{HBAR_ROW - 10}" '
            f'fill="{LINE_COLOURS[0]}"/>'
            f'<text x="{left + width + 4:.1f}" y="{y + HBAR_ROW / 2 + 4}" font-size="11" fill="#1d2330">'
            f"{escape(shown)}</text></g>"
        )
        out.append(_linked(row, links[index] if links else ""))
    out.append("</svg>")
    return mark_safe("".join(out))


def line_chart(
    labels: Sequence[str],
    lines: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    unit: str = "",
    ticks: Sequence[Tick] | None = None,
    log: bool = False,
    value_label: Callable[[float], str] = _number,
) -> SafeString:
    """One polyline per named series over shared x labels; a None value breaks the line (no data that day).

    The y axis has round figures from 0 (``linear_ticks``) unless ``ticks`` are given; with ``log`` the axis
    is logarithmic between the first and the last tick, so a median of minutes and a p90 of days both read.
    """
    every = [value for _, values in lines for value in values]
    out = [_open_svg(title=title, summary=_summary(every, unit))]
    if ticks is None:
        ticks = linear_ticks(max((value for value in every if value is not None), default=0.0))
    scale = _Scale(ticks, log=log)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    out.append(_axis(ticks=ticks, scale=scale, unit=unit))
    count = max(len(labels), 1)
    xs = [MARGIN_LEFT + plot_width * (index + 0.5) / count for index in range(len(labels))]
    legend_x = MARGIN_LEFT + 8 + 7 * len(unit)
    for number, (name, values) in enumerate(lines):
        colour = LINE_COLOURS[number % len(LINE_COLOURS)]
        dash = DASHES[number % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segment: list[str] = []
        segments: list[list[str]] = []
        points_titles: list[str] = []
        for x, value, label in zip(xs, values, labels, strict=False):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            y = scale.y(float(value))
            segment.append(f"{x:.1f},{y:.1f}")
            points_titles.append(
                f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="transparent">'
                f"<title>{escape(name)}, {escape(label)}: {escape(value_label(float(value)))}</title></rect>"
            )
        if segment:
            segments.append(segment)
        out.append(f"<g><title>{escape(name)}</title>")
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            else:
                out.append(
                    f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>'
                )
        out.append("</g>")
        out.append(f'<g class="points">{"".join(points_titles)}</g>')
        # Legend along the top, one entry per series, each as wide as its name.
        out.append(
            f'<line x1="{legend_x}" y1="12" x2="{legend_x + 18}" y2="12" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
            f'<text x="{legend_x + 22}" y="16" font-size="11" fill="#1d2330">{escape(name)}</text>'
        )
        legend_x += 34 + int(6.5 * len(name))
    out.append(_x_labels(labels, xs))
    out.append("</svg>")
    return mark_safe("".join(out))


def sparkline(values: Sequence[float], *, title: str) -> SafeString:
    """A tiny line without axes for a table cell or a heading: the shape of a daily count."""
    width, height, pad = 120, 28, 2
    out = [_open_svg(title=title, summary=_summary(list(values), ""), width=width, height=height, css="sparkline")]
    top = max(values, default=0) or 1
    count = len(values)
    if count:
        step = (width - 2 * pad) / max(count - 1, 1)
        points = " ".join(
            f"{pad + step * index:.1f},{height - pad - (height - 2 * pad) * float(value) / top:.1f}"
            for index, value in enumerate(values)
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="{LINE_COLOURS[0]}" stroke-width="1.5"/>')
    out.append("</svg>")
    return mark_safe("".join(out))

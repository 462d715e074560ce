"""Small server-side SVG charts for the report pages: no JavaScript, no library, no CDN.

Each function takes plain data and returns safe SVG markup. Every label is escaped; the ``viewBox`` lets the
browser scale the chart to the width of a phone; ``role="img"`` with a ``<title>`` and an ``aria-label`` gives
screen readers a one-line summary. The page puts the same figures in a table below each chart.
"""

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Plot area in viewBox units; the SVG scales to its container.
WIDTH = 600
HEIGHT = 220
MARGIN_LEFT = 48
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


def _axis(*, top: float, unit: str) -> str:
    """The y axis: a baseline, a top line and their figures."""
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    parts = [
        f'<line x1="{MARGIN_LEFT}" y1="{plot_bottom}" x2="{WIDTH - MARGIN_RIGHT}" y2="{plot_bottom}" '
        'stroke="#5b6474"/>',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{WIDTH - MARGIN_RIGHT}" y2="{MARGIN_TOP}" '
        f'stroke="#d9dde5" stroke-dasharray="3 3"/>',
        f'<text x="{MARGIN_LEFT - 4}" y="{plot_bottom}" text-anchor="end" font-size="11" fill="#5b6474">0</text>',
        f'<text x="{MARGIN_LEFT - 4}" y="{MARGIN_TOP + 4}" text-anchor="end" font-size="11" fill="#5b6474">'
        f"{escape(_number(top))}</text>",
    ]
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


def bar_chart(series: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> SafeString:
    """Vertical bars, one per (label, value) pair, on a zero baseline."""
    values = [float(value) for _, value in series]
    out = [_open_svg(title=title, summary=_summary(values, unit))]
    top = max(values, default=0.0) or 1.0
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    out.append(_axis(top=top, unit=unit))
    slot = plot_width / max(len(series), 1)
    bar = max(slot * 0.7, 1.0)
    xs = []
    for index, (label, value) in enumerate(series):
        height = plot_height * max(float(value), 0.0) / top
        x = MARGIN_LEFT + slot * index + (slot - bar) / 2
        xs.append(x + bar / 2)
        out.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - MARGIN_BOTTOM - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
            f'fill="{LINE_COLOURS[0]}"><title>{escape(label)}: {escape(_number(float(value)))}'
            f"{escape(' ' + unit if unit else '')}</title></rect>"
        )
    out.append(_x_labels([label for label, _ in series], xs))
    out.append("</svg>")
    return mark_safe("".join(out))


def line_chart(
    labels: Sequence[str], lines: Sequence[tuple[str, Sequence[float | None]]], *, title: str, unit: str = ""
) -> SafeString:
    """One polyline per named series over shared x labels; a None value breaks the line (no data that day)."""
    every = [value for _, values in lines for value in values]
    out = [_open_svg(title=title, summary=_summary(every, unit))]
    top = max((value for value in every if value is not None), default=0.0) or 1.0
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    out.append(_axis(top=top, unit=unit))
    count = max(len(labels), 1)
    xs = [MARGIN_LEFT + plot_width * (index + 0.5) / count for index in range(len(labels))]
    for number, (name, values) in enumerate(lines):
        colour = LINE_COLOURS[number % len(LINE_COLOURS)]
        dash = DASHES[number % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segment: list[str] = []
        segments: list[list[str]] = []
        for x, value in zip(xs, values, strict=False):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            y = HEIGHT - MARGIN_BOTTOM - plot_height * float(value) / top
            segment.append(f"{x:.1f},{y:.1f}")
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
        # Legend, top right, one entry per series.
        legend_x = WIDTH - MARGIN_RIGHT - 150 * (len(lines) - number)
        out.append(
            f'<line x1="{legend_x}" y1="12" x2="{legend_x + 18}" y2="12" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
            f'<text x="{legend_x + 22}" y="16" font-size="11" fill="#1d2330">{escape(name)}</text>'
        )
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

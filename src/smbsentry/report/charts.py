"""Inline SVG charts for the HTML report: no scripts, no external references.

Every label goes through markupsafe.escape (OS names come from the network)."""

from __future__ import annotations

from markupsafe import Markup, escape

COLORS = {"critical": "#b3261e", "high": "#c96a00", "medium": "#d4a300", "low": "#2f6fb3", "info": "#7a8394"}
PALETTE = ["#2f6fb3", "#c96a00", "#1b6b34", "#7a3fb3", "#b3261e", "#0f8a8a", "#7a8394", "#a0522d"]


def bars(items: list[tuple], width: int = 460) -> Markup:
    """Horizontal bars: (label, value, colour or None[, link]); a bar with a link is one (the dashboard's
    lead to the hosts they count)."""
    if not items:
        return Markup("")
    row, label_w = 22, 190
    top = max((item[1] for item in items), default=0) or 1
    h = row * len(items) + 4
    parts = [f'<svg class="chart" width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img">']
    for i, (label, value, color, *link) in enumerate(items):
        y = i * row + 2
        w = int((width - label_w - 50) * value / top)
        text = str(label)
        short = text if len(text) <= 28 else text[:27] + "\u2026"
        if link and link[0]:
            parts.append(f'<a href="{escape(link[0])}" class="bar-link">')
        parts.append(f'<text x="0" y="{y + 15}" font-size="12"><title>{escape(text)}</title>{escape(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1)}" height="15" fill="{color or PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{label_w + max(w, 1) + 5}" y="{y + 15}" font-size="12">{int(value)}</text>')
        if link and link[0]:
            parts.append("</a>")
    parts.append("</svg>")
    return Markup("".join(parts))


def share(part: int, total: int, text: str, color: str = "#b3261e", width: int = 460) -> Markup:
    """One stacked bar: part of total; `text` says what it counts, with the denominator."""
    w = int((width - 2) * part / total) if total else 0
    return Markup(
        f'<svg class="chart" width="{width}" height="42" viewBox="0 0 {width} 42" role="img">'
        f'<text x="0" y="13" font-size="12">{escape(text)}</text>'
        f'<rect x="1" y="20" width="{width - 2}" height="16" fill="#e3e6eb"/>'
        f'<rect x="1" y="20" width="{w}" height="16" fill="{color}"/></svg>'
    )


def trend(points: list[tuple[str, int, int]], labels: tuple[str, str], width: int = 460, height: int = 160) -> Markup:
    """Lines across scans: (scan label, hosts, exposed hosts), oldest first."""
    if len(points) < 2:
        return Markup("")
    pad_l, pad_b, pad_t = 30, 30, 20
    top = max(max(h, e) for _, h, e in points) or 1
    step = (width - pad_l - 10) / (len(points) - 1)

    def xy(i, v):
        return pad_l + i * step, pad_t + (height - pad_t - pad_b) * (1 - v / top)

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<text x="{pad_l}" y="12" font-size="11" fill="#2f6fb3">\u2014 {escape(labels[0])}</text>',
             f'<text x="{pad_l + 160}" y="12" font-size="11" fill="#b3261e">\u2014 {escape(labels[1])}</text>',
             f'<text x="0" y="{pad_t + 8}" font-size="10">{top}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#999"/>']
    for idx, color in ((1, "#2f6fb3"), (2, "#b3261e")):
        pts = " ".join("%.1f,%.1f" % xy(i, p[idx]) for i, p in enumerate(points))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        for i, p in enumerate(points):
            x, y = xy(i, p[idx])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(p[0])}: {p[idx]}</title></circle>')
    for i, p in enumerate(points):
        x, _ = xy(i, 0)
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{escape(p[0])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

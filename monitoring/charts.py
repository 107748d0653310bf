"""The Analytics page's charts: pygal draws each as an inline SVG on the server.

No JavaScript goes with them: pygal's tooltip script is not referenced (js=[]) and its
inline configuration script is taken out of the tree, so a chart is plain SVG that needs
nothing from the network (and no script may run from a label someone typed).
"""

from __future__ import annotations

from datetime import date
from xml.etree import ElementTree

import pygal
from pygal.style import Style

STYLE = Style(background="transparent", plot_background="transparent", font_family="inherit",
              colors=("#417690", "#ef8f00", "#2e7d32", "#c62828", "#6f42c1", "#9e9e9e", "#0aa1c9", "#8d6e63"))
COMMON = {"js": [], "disable_xml_declaration": True, "style": STYLE, "height": 320, "width": 800,
          "legend_at_bottom": True, "truncate_legend": 40, "print_values": False,
          "no_data_text": "No data in this range"}


def svg(chart) -> str:
    """The chart as SVG markup without any <script> element."""
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return ElementTree.tostring(tree, encoding="unicode")


def _day_labels(days: list[date]) -> dict:
    every = max(1, len(days) // 12)
    return {"x_labels": [d.strftime("%m-%d") for d in days], "x_labels_major_every": every,
            "show_minor_x_labels": every == 1, "x_label_rotation": 30}


def _ms(value) -> float | None:
    return None if value is None else round(value, 1)


def webhooks_per_event_type(series: dict[str, dict[date, int]], days: list[date]) -> str:
    chart = pygal.StackedBar(title="Webhooks per event type", **COMMON, **_day_labels(days))
    for event_type in sorted(series):
        chart.add(event_type, [series[event_type].get(d, 0) for d in days])
    return svg(chart)


def webhook_results(results: dict) -> str:
    title = (f"Results by status and error code ({results['total']} webhooks; accepted "
             f"{results['accepted']:.1%}, rejected {results['rejected']:.1%})") if results["total"] else \
        "Results by status and error code"
    chart = pygal.HorizontalBar(title=title, value_formatter=lambda v: f"{v:.1f} %", **COMMON)
    for code, share in results["by_code"].items():
        chart.add(code, round(share * 100, 2))
    return svg(chart)


def webhook_latency(latency: dict[date, dict], days: list[date]) -> str:
    chart = pygal.Line(title="Webhook processing latency (ms, receipt to processed)", allow_interruptions=True,
                       **COMMON, **_day_labels(days))
    if latency:
        chart.add("p50", [_ms(latency.get(d, {}).get("p50")) for d in days])
        chart.add("p95", [_ms(latency.get(d, {}).get("p95")) for d in days])
    return svg(chart)


def calls_per_day(counts: dict[date, int], days: list[date]) -> str:
    chart = pygal.Bar(title="Calls per day", **COMMON, **_day_labels(days))
    if counts:
        chart.add("calls", [counts.get(d, 0) for d in days])
    return svg(chart)


def call_outcomes(outcomes: dict[str, int]) -> str:
    chart = pygal.Bar(title="Call outcomes", **COMMON)
    if any(outcomes.values()):
        chart.x_labels = list(outcomes)
        chart.add("calls", list(outcomes.values()))
    return svg(chart)


def call_durations(buckets: dict[str, int]) -> str:
    chart = pygal.Bar(title="Call duration", **COMMON)
    if any(buckets.values()):
        chart.x_labels = list(buckets)
        chart.add("calls", list(buckets.values()))
    return svg(chart)


def booking_conversion(conversion: dict[str, dict]) -> str:
    chart = pygal.HorizontalBar(title="Booking conversion per agent (% of calls with a booking)",
                                value_formatter=lambda v: f"{v:.1f} %", **COMMON)
    for agent, figures in conversion.items():
        chart.add(f"{agent} ({figures['booked']}/{figures['calls']})", round(figures["rate"] * 100, 2))
    return svg(chart)


def turn_latency(latency: dict[str, dict], title: str) -> str:
    chart = pygal.Bar(title=title, **COMMON)
    if latency:
        chart.x_labels = list(latency)
        for which, name in (("first", "first chunk"), ("last", "last chunk")):
            for p in ("p50", "p95"):
                chart.add(f"{name} {p}", [_ms(figures[which][p]) for figures in latency.values()])
    return svg(chart)

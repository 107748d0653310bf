"""The results' charts as SVG drawn on the server (pygal), shown with JavaScript off.

pygal escapes the labels it writes (variant names are the admin's text); the script it would
embed (its tooltips) is taken out, so the SVG is a picture, not a widget.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pygal
from pygal.style import DefaultStyle

from .models import RATE_METRICS
from .selectors import Results


def _config(title: str, **extra) -> pygal.Config:
    settings = {"show_legend": False, "height": 300, "width": 640, "style": DefaultStyle, **extra}
    return pygal.Config(title=title, js=[], disable_xml_declaration=True, **settings)


def _svg(chart: pygal.Bar) -> str:
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return ElementTree.tostring(tree, encoding="unicode")


def primary_chart(results: Results) -> str:
    """A bar per variant: the primary metric (a percentage, or seconds) with its 95 % interval."""
    rate = results.experiment.primary_metric in RATE_METRICS
    scale = 100 if rate else 1
    chart = pygal.Bar(_config(f"{results.metric_label} (95 % interval)", range=(0, 100) if rate else None,
                              value_formatter=(lambda v: f"{v:.1f} %") if rate else (lambda v: f"{v:.1f} s")))
    chart.x_labels = [row.variant.name for row in results.rows]
    values = []
    for row in results.rows:
        estimate = row.primary
        if estimate.value is None:
            values.append(None)
        elif estimate.low is None:
            values.append(estimate.value * scale)
        else:
            values.append({"value": estimate.value * scale,
                           "ci": {"low": estimate.low * scale, "high": estimate.high * scale}})
    chart.add(results.metric_label, values)
    return _svg(chart)


def latency_chart(results: Results) -> str:
    """Per variant, the median and mean time to the first words of an answer (ms)."""
    chart = pygal.Bar(_config("Per-turn latency to the first words (ms)", show_legend=True,
                              value_formatter=lambda v: f"{v:.0f} ms"))
    chart.x_labels = [row.variant.name for row in results.rows]
    chart.add("median", [row.latency_p50_ms for row in results.rows])
    chart.add("mean", [row.latency_mean_ms for row in results.rows])
    return _svg(chart)

"""How the results page writes numbers: rates as percentages, handle time in seconds."""

from django import template

from ..models import RATE_METRICS

register = template.Library()


@register.filter
def percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


@register.filter
def metric_value(value, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f} %" if metric in RATE_METRICS else f"{value:.1f} s"


@register.filter
def estimate(value, metric: str) -> str:
    """"31.0 % (22.4 – 41.2 %)", "95.0 s (80.1 – 109.9 s)"; "—" without calls."""
    if value is None or value.value is None:
        return "—"
    if value.low is None:
        return metric_value(value.value, metric)
    scale, unit = (100, "%") if metric in RATE_METRICS else (1, "s")
    return f"{value.value * scale:.1f} {unit} ({value.low * scale:.1f} – {value.high * scale:.1f} {unit})"

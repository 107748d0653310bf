"""Forms of the tenants admin: the company's opening hours as a weekday grid."""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from .validators import WEEKDAYS, validate_opening_hours

DAY_NAMES = dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True))
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_INPUT = re.compile(r"^(?P<day>[a-z]{3})__(?P<slot>\d{1,2})__(?P<end>open|close)$")


def _ranges_of(value) -> dict[str, list[list[str]]]:
    """A stored or submitted value as {day: [[open, close], …]}, whatever could be read of it."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {day: [[str(t) for t in pair][:2] for pair in ranges if isinstance(pair, list | tuple)]
            for day, ranges in value.items() if day in DAY_NAMES and isinstance(ranges, list)}


def breaks_of(ranges: list[list[str]]) -> list[tuple[str, str]]:
    """The breaks of a day: the gaps between its consecutive opening ranges."""
    ordered = sorted(r for r in ranges if len(r) == 2 and all(_HHMM.match(t) for t in r))
    return [(closes, opens) for (_, closes), (opens, _) in zip(ordered, ordered[1:], strict=False) if closes < opens]


class OpeningHoursWidget(forms.Widget):
    """A grid: a row per weekday, each with its ranges as pairs of `<input type="time">` (every
    row one empty pair more than the day with the most ranges, to add one) and its breaks. Inputs are named
    `<name>__<day>__<n>__open|close`. `time_zone` is said above the grid."""

    template_name = "tenants/widgets/opening_hours.html"
    time_zone = ""

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        hours = _ranges_of(value)
        width = max(2, 1 + max((len(ranges) for ranges in hours.values()), default=0))
        rows = []
        for day, label in DAY_NAMES.items():
            ranges = hours.get(day, [])
            slots = [(n, pair + [""] * (2 - len(pair))) for n, pair in enumerate(ranges)]
            slots += [(n, ["", ""]) for n in range(len(ranges), width)]
            filled = [pair for pair in ranges if any(pair)]
            breaks = breaks_of(filled)
            note = "closed" if not filled else ", ".join(f"break {a}–{b}" for a, b in breaks)
            rows.append({"day": day, "label": label, "slots": slots, "note": note})
        context["widget"].update(rows=rows, time_zone=self.time_zone)
        return context

    def value_from_datadict(self, data, files, name):
        prefix = name + "__"
        submitted: dict[str, dict[int, dict[str, str]]] = {}
        for key in data:
            match = _INPUT.match(key[len(prefix):]) if key.startswith(prefix) else None
            if match and match["day"] in DAY_NAMES:
                slot = submitted.setdefault(match["day"], {}).setdefault(int(match["slot"]), {})
                slot[match["end"]] = data.get(key, "").strip()
        if not submitted:  # a form posted without the grid (a script): the JSON, if it sent one
            return data.get(name)
        return {day: [[s.get("open", ""), s.get("close", "")] for _, s in sorted(slots.items())]
                for day, slots in submitted.items()}

    def value_omitted_from_data(self, data, files, name):
        return name not in data and not any(key.startswith(name + "__") for key in data)


class OpeningHoursField(forms.Field):
    """The grid's value, checked range by range; cleaned to the stored JSON: per weekday its
    ranges in order (empty slots dropped), days without ranges left out (closed)."""

    widget = OpeningHoursWidget

    def to_python(self, value):
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValidationError("Opening hours must be JSON keyed by weekday.", code="invalid") from None
        return value

    def validate(self, value) -> None:
        super().validate(value)
        if not isinstance(value, dict):
            raise ValidationError("Opening hours are an object keyed by weekday (mon … sun).", code="invalid")
        errors = []
        for day, ranges in value.items():
            if day not in DAY_NAMES or not isinstance(ranges, list):
                continue  # the model's validator names these
            label = DAY_NAMES[day]
            kept = []
            for pair in ranges:
                pair = [str(t).strip() for t in pair] if isinstance(pair, list | tuple) else []
                if len(pair) != 2 or not any(pair):
                    continue
                opens, closes = pair
                if not (opens and closes):
                    errors.append(f"{label}: {opens}–{closes} needs both an opening and a closing time.")
                    continue
                bad = [t for t in (opens, closes) if not _HHMM.match(t)]
                if bad:
                    errors.append(f"{label}: {bad[0]} is not a time of day (HH:MM).")
                    continue
                if opens >= closes:
                    errors.append(f"{label}: {opens}–{closes} closes before it opens.")
                    continue
                kept.append((opens, closes))
            kept.sort()
            errors += [f"{label}: {a[0]}–{a[1]} and {b[0]}–{b[1]} overlap." for a, b in zip(kept, kept[1:], strict=False)
                       if b[0] < a[1]]
        if errors:
            raise ValidationError(errors)

    def clean(self, value):
        value = super().clean(value)
        cleaned = {day: sorted([str(t).strip() for t in pair] for pair in ranges
                               if isinstance(pair, list | tuple) and any(str(t).strip() for t in pair))
                   for day, ranges in value.items()} if isinstance(value, dict) else value
        cleaned = {day: ranges for day, ranges in cleaned.items() if ranges}
        validate_opening_hours(cleaned)  # the model's own rule, the one every interface meets
        return cleaned


class CompanyForm(forms.ModelForm):
    opening_hours = OpeningHoursField(
        required=False, label="Opening hours",
        help_text="Per weekday one range or several (the gaps between them are breaks); a day without a "
                  "range is closed. An empty pair is ignored: fill it to add a range.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "opening_hours" in self.fields:
            self.fields["opening_hours"].widget.time_zone = self.instance.timezone if self.instance.pk else ""

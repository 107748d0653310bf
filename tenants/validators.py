import re

import phonenumbers
from django.core.exceptions import ValidationError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def validate_e164(value: str) -> None:
    if not value:
        return
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if (parsed is None or not phonenumbers.is_possible_number(parsed)
            or phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value):
        raise ValidationError("%(value)s is not a phone number in E.164 form, such as +493083793369.",
                              params={"value": value}, code="invalid_e164")


def phone_readings(value: str, region: str | None = None):
    """The ways a dialled string can be read in `region`, most likely first, as parsed numbers.

    Digits without a plus or a trunk 0 that start with the region's own country code ("49 151
    23456789" in DE) are read first as that country's international form; a German national
    number starts with 0, so "4915…" is not one.
    """
    plain = re.sub(r"[^\d+]", "", value or "")
    candidates = [value]
    if region and plain and not plain.startswith(("+", "0")):
        code = str(phonenumbers.country_code_for_region(region))
        if code != "0" and plain.startswith(code):
            candidates.insert(0, "+" + plain)
    for candidate in candidates:
        try:
            yield phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue


def normalize_e164(value: str, region: str | None = None, *, valid: bool = False) -> str:
    """'+49 30 837 93 369' -> '+493083793369'; raises ValidationError when it is no number.

    `valid`: only a number in use by the numbering plan (`phonenumbers.is_valid_number`), as for
    a number a caller said; else one of a possible length (staff may enter test numbers).
    """
    check = phonenumbers.is_valid_number if valid else phonenumbers.is_possible_number
    for parsed in phone_readings(value, region):
        if check(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise ValidationError("%(value)s is not a phone number.", params={"value": value}, code="invalid_phone")


def validate_opening_hours(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Opening hours are an object keyed by weekday (mon … sun).", code="invalid")
    for day, ranges in value.items():
        if day not in WEEKDAYS:
            raise ValidationError("%(day)s is not a weekday; use mon, tue, wed, thu, fri, sat, sun.",
                                  params={"day": day}, code="invalid_day")
        if not isinstance(ranges, list):
            raise ValidationError("%(day)s: a list of [open, close] pairs.", params={"day": day}, code="invalid")
        previous_close = None
        for pair in ranges:
            if (not isinstance(pair, list | tuple) or len(pair) != 2
                    or not all(isinstance(t, str) and _HHMM.match(t) for t in pair)):
                raise ValidationError("%(day)s: each range is [\"HH:MM\", \"HH:MM\"].",
                                      params={"day": day}, code="invalid_range")
            opens, closes = pair
            if opens >= closes:
                raise ValidationError("%(day)s: %(open)s must be before %(close)s.",
                                      params={"day": day, "open": opens, "close": closes}, code="invalid_range")
            if previous_close is not None and opens < previous_close:
                raise ValidationError("%(day)s: ranges overlap or are out of order.",
                                      params={"day": day}, code="invalid_range")
            previous_close = closes

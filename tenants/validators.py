import re
import unicodedata

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


def header_value_problem(value: str, *, spaces: bool = True) -> str | None:
    """Why `value` cannot be sent unchanged as an HTTP header value, or None when it can.

    A header value is visible ASCII with spaces or tabs inside (RFC 9110). Anything else
    makes the HTTP client raise (a character outside Latin-1), splits the header (a line
    break), or is changed on the way (NUL and other control characters; spaces at either
    end are stripped by the receiver). `spaces=False` refuses inner spaces too, as no
    credential holds one. The answer names the kind of character, never the value, so it
    can be shown on a form and recorded with a delivery.
    """
    for char in value:
        if char in "\r\n":
            return "a line break"
        if char in " \t":
            if not spaces:
                return "a space" if char == " " else "a tab"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            return "a control character"
        elif ord(char) > 0x7E:
            return f"the character {unicodedata.name(char, 'U+%04X' % ord(char)).lower()}, which is not ASCII"
    if value != value.strip(" \t"):
        return "a space at its start or end"
    return None


def validate_sendable_secret(value: str) -> None:
    """A secret is sent in an HTTP header (Authorization, xi-api-key) or used as a signing key:
    refuse one that no header can carry (an en dash or a line break pasted by accident).

    Raises ValidationError (code "unsendable") naming the kind of character, never the secret.
    """
    problem = header_value_problem(value, spaces=False)
    if problem:
        raise ValidationError("This secret cannot be used: it holds %(problem)s, and an HTTP header cannot carry "
                              "that. Paste it again as the provider shows it.",
                              params={"problem": problem}, code="unsendable")


# Rates of the rate limits (config.ratelimits): requests/period, e.g. "600/m", "5/10s".
RATE = re.compile(r"^[1-9][0-9]{0,8}/([1-9][0-9]{0,4})?[smhd]$")
# The limits a company may be given its own rate for: those that count one of its own credentials.
COMPANY_LIMITS = ("webhook.company", "function.agent")


def validate_rate(value) -> None:
    if not isinstance(value, str) or not RATE.match(value):
        raise ValidationError("%(value)s is not a rate: write requests/period, e.g. 600/m (s, m, h, d; "
                              "5/10s is 5 per 10 seconds).", params={"value": value}, code="rate")


def validate_company_limits(value) -> None:
    """A company's own rates: an object of COMPANY_LIMITS names to rates."""
    if not isinstance(value, dict):
        raise ValidationError('Write an object of limit names to rates, e.g. {"webhook.company": "12000/m"}.',
                              code="limits")
    for name, rate in value.items():
        if name not in COMPANY_LIMITS:
            raise ValidationError("%(name)s is not a limit a company can change; these can: %(names)s.",
                                  params={"name": name, "names": ", ".join(COMPANY_LIMITS)}, code="limit_name")
        validate_rate(rate)

"""Phone numbers as callers say them: digits in groups, "plus", "null", "oh", "double five".

Read in the company's region with `phonenumbers` (the region's own country code said without
the plus, "49 151 23456789", is that country's number). A reading that is not a valid number
is reported as such, so the caller is asked again rather than booked under a wrong number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from .text import Scan

_DIGIT_WORDS = {
    "null": "0", "zero": "0", "oh": "0", "o": "0", "eins": "1", "ein": "1", "one": "1", "zwei": "2", "zwo": "2",
    "two": "2", "drei": "3", "three": "3", "vier": "4", "four": "4", "fünf": "5", "fuenf": "5", "five": "5",
    "sechs": "6", "six": "6", "sieben": "7", "seven": "7", "acht": "8", "eight": "8", "neun": "9", "nine": "9",
}
_REPEAT = {"double": 2, "doppel": 2, "doppelt": 2, "triple": 3, "dreifach": 3}
_WORD = "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True))
_SPOKEN = re.compile(rf"\b(?:(?:plus|{'|'.join(_REPEAT)})\s+)?(?:{_WORD})(?:\s+(?:(?:{'|'.join(_REPEAT)})\s+)?"
                     rf"(?:{_WORD}|\d+)){{5,}}\b")
_DIGITS = re.compile(r"(?<![\w:.])((?:\+|plus\s+)?\d[\d \-/()]{4,}\d)(?![\w:])")
CALLER_OWN = re.compile(r"this number|the number i'?m calling from|same number|my number|diese[rnm]? nummer"
                        r"|(?:der|die|dieselbe|gleiche[n]?|selben?)\s+(?:gleichen\s+)?nummer"
                        r"|meine nummer|die nummer,? (?:von der|mit der)|mit der ich anrufe|von der ich anrufe"
                        r"|the one i'?m calling (?:from|on)")


@dataclass(frozen=True)
class PhoneReading:
    said: str           # the digits as heard, e.g. "+49 151 23456789"
    e164: str | None    # the valid number, or None when it is no valid number


def e164(digits: str, region: str | None) -> str | None:
    """A dialled string as E.164, read in `region`; None when it is not a valid number.

    Digits without a plus or a trunk 0 that start with the region's own country code
    ("49 151 23456789" in DE) are that country's international form.
    """
    plain = re.sub(r"[^\d+]", "", digits)
    if not plain:
        return None
    candidates = [plain]
    if region and not plain.startswith(("+", "0")):
        code = str(phonenumbers.country_code_for_region(region))
        if code != "0" and plain.startswith(code):
            candidates.insert(0, "+" + plain)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def _spoken_digits(text: str) -> str:
    digits, repeat = [], 1
    for word in text.split():
        if word == "plus":
            digits.append("+")
        elif word in _REPEAT:
            repeat = _REPEAT[word]
        elif word.isdigit():
            digits.append(word * repeat if len(word) == 1 else word)
            repeat = 1
        elif word in _DIGIT_WORDS:
            digits.append(_DIGIT_WORDS[word] * repeat)
            repeat = 1
    return "".join(digits)


def read_phone(scan: Scan, region: str | None) -> tuple[PhoneReading | None, bool]:
    """(the number said, whether the caller meant their own number) taken out of `scan`."""
    found: list[PhoneReading] = []

    def digits(m: re.Match) -> bool:
        said = m.group(1).replace("plus", "+")
        if len(re.sub(r"\D", "", said)) < 6:
            return False
        found.append(PhoneReading(said=re.sub(r"\s+", " ", said).strip(), e164=e164(said, region)))
        return True

    def spoken(m: re.Match) -> bool:
        said = _spoken_digits(m.group(0))
        if len(said.lstrip("+")) < 6:
            return False
        found.append(PhoneReading(said=said, e164=e164(said, region)))
        return True

    scan.take(_DIGITS, "phone", digits)
    scan.take(_SPOKEN, "phone", spoken)
    own: list[bool] = []
    scan.take(CALLER_OWN, "phone", lambda m: own.append(True))
    return (found[0] if found else None), bool(own) and not found

"""Phone numbers as callers say them: digits in groups, "plus", "null", "oh", "double five".

Read in the company's region with `phonenumbers` (the region's own country code said without
the plus, "49 151 23456789", is that country's number). A reading that is not a valid number
is reported as such, so the caller is asked again rather than booked under a wrong number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from tenants.validators import normalize_e164

from .lexicon import NUMBER_WORDS
from .text import Scan

_PAIR_WORDS = {word: f"{value:02d}" for word, value in NUMBER_WORDS.items() if 10 <= value <= 99 and " " not in word}
_DIGIT_WORDS = {
    "null": "0", "zero": "0", "oh": "0", "o": "0", "eins": "1", "ein": "1", "one": "1", "zwei": "2", "zwo": "2",
    "two": "2", "drei": "3", "three": "3", "vier": "4", "four": "4", "fünf": "5", "fuenf": "5", "five": "5",
    "sechs": "6", "six": "6", "sieben": "7", "seven": "7", "acht": "8", "eight": "8", "neun": "9", "nine": "9",
}
_REPEAT = {"double": 2, "doppel": 2, "doppelt": 2, "triple": 3, "dreifach": 3}
_WORD = "|".join(sorted([*_DIGIT_WORDS, *_PAIR_WORDS], key=len, reverse=True))
_SPOKEN = re.compile(rf"\b(?:(?:plus|{'|'.join(_REPEAT)})\s+)?(?:{_WORD})(?:\s+(?:(?:{'|'.join(_REPEAT)})\s+)?"
                     rf"(?:{_WORD}|\d+)){{3,}}\b")
_DIGITS = re.compile(r"(?<![\w:.])((?:\+|plus\s+)?\d[\d \-/()]{4,}\d)(?![\w:])"
                     r"|(?<![\w:.])(\(?\d{3}\)?[.]\d{3}[.]\d{4})(?![\w:])")
# "area code 212, then 555-0171", "Vorwahl 030, dann 1234567": the parts of one number.
_AREA_CODE = re.compile(r"\b(?:area code|vorwahl)\s+(\d{2,5})[\s,]+(?:then|dann|und|and)?\s*(?=\d)")
CALLER_OWN = re.compile(r"this number|the number i'?m calling (?:from|on|with)|same number|my number|this one"
                        r"|diese[rnm]? nummer|(?:handy)?nummer hier|die hier|diese hier|the one i'?m on"
                        r"|(?:der|die|dieselbe|gleiche[n]?|selben?)\s+(?:gleichen\s+)?nummer"
                        r"|meine nummer|die nummer,? (?:von der|mit der)|mit der ich anrufe|von der ich anrufe"
                        r"|the one i'?m calling (?:from|on)")


@dataclass(frozen=True)
class PhoneReading:
    said: str           # the digits as heard, e.g. "+49 151 23456789"
    e164: str | None    # the valid number, or None when it is no valid number


def e164(digits: str, region: str | None) -> str | None:
    """A dialled string as E.164, read in `region` (tenants.validators.phone_readings); None when it
    is no valid number."""
    try:
        return normalize_e164(digits, region, valid=True)
    except ValidationError:
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
        elif word in _PAIR_WORDS:
            digits.append(_PAIR_WORDS[word])  # "null dreißig, vierundfünfzig": digits said in pairs
    return "".join(digits)


def read_phone(scan: Scan, region: str | None, *, expected: bool = False) -> tuple[PhoneReading | None, bool]:
    """(the number said, whether the caller meant their own number) taken out of `scan`.

    `expected`: the caller was asked for a number, so three digits already are an attempt at
    one (reported as no valid number, to be asked again); otherwise a number has six or more.
    """
    found: list[PhoneReading] = []
    least = 3 if expected else 6
    scan.text = _AREA_CODE.sub(lambda m: m.group(1) + " " + " " * (len(m.group(0)) - len(m.group(1)) - 1),
                               scan.text)

    def digits(m: re.Match) -> bool:
        said = next(group for group in m.groups() if group).replace("plus", "+")
        if len(re.sub(r"\D", "", said)) < least:
            return False
        found.append(PhoneReading(said=re.sub(r"\s+", " ", said).strip(), e164=e164(said, region)))
        return True

    def spoken(m: re.Match) -> bool:
        said = _spoken_digits(m.group(0))
        if len(said.lstrip("+")) < least:
            return False
        found.append(PhoneReading(said=said, e164=e164(said, region)))
        return True

    scan.take(_DIGITS, "phone", digits)
    if expected:
        scan.take(r"(?<![\w:.])(\d{3,5})(?![\w:.])", "phone", digits)
    scan.take(_SPOKEN, "phone", spoken)
    own: list[bool] = []
    scan.take(CALLER_OWN, "phone", lambda m: own.append(True))
    return (found[0] if found else None), bool(own) and not found

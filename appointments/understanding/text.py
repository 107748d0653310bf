"""Normalised caller text and the scan that takes recognised phrases out of it.

Every extractor works on one `Scan`: it finds its phrases in what is left, records them,
and blanks them out (spaces of the same length, so positions stay valid), so a later
extractor never reads the same words again, and what no extractor took is left over
for the check that nothing meaningful went unread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .lexicon import WEEKDAY_WORDS

_WEEKDAY_ALT = "|".join(WEEKDAY_WORDS)


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe and space, punctuation that carries no number removed.

    Kept: ':' and '.' inside or after digits (14:30, 9.15, 24.11., 3.), '+' before digits,
    '-' inside words (check-up, twenty-one) and between digits (030-1234).
    German "Dienstagmorgen" / "Dienstag morgen" / "heute morgen" become "dienstag morgens" /
    "heute morgens": there "morgen" is the morning, not tomorrow.
    """
    text = (text or "").replace("\u00a0", " ").replace("’", "'").replace("`", "'").replace("´", "'").lower()
    text = re.sub(r"\b([ap])\.\s?m\.", r"\1m", text)
    text = re.sub(r"\bo'\s?clock\b|\boclock\b", "oclock", text)
    text = re.sub(r"(?<!\d)\.", " ", text)
    text = re.sub(r"[,;!?()\"«»„“”]", " ", text)
    text = re.sub(r"(?<![\w])-|-(?![\w])", " ", text)
    text = re.sub(rf"\b({_WEEKDAY_ALT})'s\b", r"\1", text)  # "Friday's cleaning"
    text = re.sub(rf"\b({_WEEKDAY_ALT})(morgen|vormittag|mittag|nachmittag|abend|nacht)s?\b", r"\1 \2s", text)
    text = re.sub(rf"\b(heute|{_WEEKDAY_ALT})\s+(morgen)\b(?!\s+(?:früh|frueh))", r"\1 morgens", text)
    return " " + re.sub(r"\s+", " ", text).strip() + " "


@dataclass
class Scan:
    """The normalised text with what extractors have taken blanked out."""

    text: str
    taken: list[tuple[int, int, str]] = field(default_factory=list)   # (start, end, what)

    @classmethod
    def of(cls, said: str) -> Scan:
        return cls(normalise(said))

    def take(self, pattern: re.Pattern | str, what: str, handle: Callable[[re.Match], bool | None]) -> None:
        """Call `handle` for each match left; a match it does not reject (returns False) is blanked out."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        for match in list(compiled.finditer(self.text)):
            if self.text[match.start():match.end()].strip() != match.group(0).strip():
                continue  # overlaps something taken by an earlier match of this pattern
            if handle(match) is False:
                continue
            self.blank(match.start(), match.end(), what)

    def blank(self, start: int, end: int, what: str) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]
        self.taken.append((start, end, what))

    def rest(self) -> str:
        return re.sub(r"\s+", " ", self.text).strip()

    def words(self) -> list[str]:
        return re.findall(r"[\w'.+:-]+", self.text)

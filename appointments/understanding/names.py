"""A caller's name: introduced ("mein Name ist …", "this is …"), corrected ("nein, der Name ist …",
"no, it's …"), or given as the answer to "what is your name?".

A name is one to four name-like words (letters, hyphens, apostrophes; an optional title
such as "Frau" or "Dr." kept in front) none of which is a word of the language: "Dann um 13
Uhr" is a time, not a patient called "Dann Um Uhr". As an answer, the words around a name
may only be fillers ("ja", "also", "genau") or the day and time the caller added.
"""

from __future__ import annotations

import re

from .lexicon import CLOSED_CLASS, HONORIFICS

_NAME_WORD = re.compile(r"^[^\W\d_](?:[^\W\d_]|['’.-])*$")
_INTRO = re.compile(
    r"(?:my name is|my name's|the name is|the name's|name is|this is|i am|i'm|it's|it is|call me|under the name"
    r"|mein name ist|mein name wäre|der name ist|der name wäre|name ist|ich heiße|ich heisse|hier ist|hier spricht"
    r"|ich bin|auf den namen|unter dem namen|es ist|das ist)\s+(?P<name>[^,.!?;]+)", re.IGNORECASE)
_SAYS_NAME_AFTER = re.compile(r"\b(?P<name>[^,.!?;]+?)\s+(?:ist mein name|mein name|is my name|here|hier)\b",
                              re.IGNORECASE)
_CORRECTION = re.compile(r"\b(?:nein|no|nicht|not|falsch|wrong|sorry|entschuldigung)\b.*\b(?:name|heiße|heisse"
                         r"|it's|it is|ist)\b", re.IGNORECASE)
# Words a name may come with as an answer: fillers, the caller's yes, politeness.
ANSWER_FILLERS = {
    "ja", "jawohl", "genau", "äh", "ähm", "hm", "ach", "so", "gerne", "gern", "bitte", "danke", "hallo",
    "mein", "name", "ist", "ich", "heiße", "heisse", "bin", "der", "die", "das", "hier", "spricht", "es", "auf",
    "den", "namen", "yes", "yeah", "yep", "sure", "ok", "okay", "well", "um", "uh", "hi", "hello", "my", "is",
    "it's", "its", "i'm", "im", "this", "the", "please", "thanks", "right", "oh", "für", "for", "under",
    "wäre", "would", "be", "klar", "natürlich", "of", "course", "also",
}


TITLES = {h.rstrip(".") for h in HONORIFICS}
_ARTICLES = {"der", "die", "the", "a", "an", "ein", "eine"}


def _name_words(words: list[str]) -> str | None:
    """The words as a name (capitalised where the transcript left them lower case), or None."""
    kept: list[str] = []
    for word in words:
        bare = word.strip(".,!?;:'\"")
        if not bare:
            continue
        lowered = bare.lower()
        if lowered in TITLES and all(k.lower().rstrip(".") in TITLES for k in kept):
            titled = word.strip(",!?;:'\"")
            kept.append(titled[:1].upper() + titled[1:])
            continue
        if not _NAME_WORD.match(bare) or lowered in CLOSED_CLASS or len(bare) < 2:
            return None
        kept.append(bare[:1].upper() + bare[1:])
    if not [w for w in kept if w.lower().rstrip(".") not in TITLES] or len(kept) > 5:
        return None
    if len(kept) >= 3 and kept[0] == kept[-1]:
        kept = kept[1:]  # "Özdemir, Ayşe Özdemir": the surname, then the whole name
    return " ".join(kept)


def introduced_name(text: str) -> str | None:
    """A name the caller introduced or corrected in a sentence, else None."""
    for match in list(_INTRO.finditer(text)) + list(_SAYS_NAME_AFTER.finditer(text)):
        words = match.group("name").split()
        while words and words[0].lower() in _ARTICLES:
            words = words[1:]
        for length in range(min(len(words), 5), 0, -1):
            name = _name_words(words[:length])
            if name:
                return name
    return None


def is_correction(text: str) -> bool:
    """'No, the name is …' / 'Nein, ich heiße …': a name said to replace the one understood."""
    return bool(_CORRECTION.search(text))


def name_from_answer(text: str, *, allowed: set[str] = frozenset()) -> str | None:
    """A name given as the answer to "what is your name?", or None when the answer is no name.

    `allowed`: further words the answer may hold besides the name (the day and time the
    caller added, which the caller of this function has read already).
    """
    introduced = introduced_name(text)
    if introduced:
        return introduced
    words = [w.strip(".") if w.lower().rstrip(".") not in TITLES else w
             for w in re.split(r"[\s,;!?]+", text.strip()) if w.strip(".")]
    words = [w for w in words if w.lower() not in ANSWER_FILLERS and w.lower() not in allowed
             and not any(ch.isdigit() for ch in w)]
    # The name is the last run of words that are no words of the language; what comes before it
    # may only be such words ("Das ist für meine Tochter, Lisa Braun"), never an unknown one.
    start = len(words)
    while start > 0 and (words[start - 1].lower() not in CLOSED_CLASS
                         or words[start - 1].lower().rstrip(".") in TITLES):
        start -= 1
    if start == len(words) or any(w.lower() not in CLOSED_CLASS for w in words[:start]):
        return None
    return _name_words(words[start:])

"""A caller's name: introduced ("mein Name ist …", "this is …", "Müller hier", "last name
Goldberg, first name Rachel"), corrected ("nein, der Name ist …", "no, it's …"), or given as
the answer to "what is your name?".

A name is one to four name-like words (letters, hyphens, apostrophes; a title such as "Frau"
or "Dr." kept in front; "von", "van", "de" … inside) none of which is a word of the language:
"Dann um 13 Uhr" is a time, not a patient called "Dann Um Uhr". As an answer, the words around
a name may only be fillers ("ja", "also", "genau"), small words of the language ("das ist für
meine Tochter, …"), letters spelled out ("T-R-A-N", "mit e i") or the day and time the caller
added. Where the transcript writes capitals, a name introduced with "I'm" / "it's" must have
them ("I'm due for a check-up" names nobody); a question is never a name.
"""

from __future__ import annotations

import re

from .lexicon import CLOSED_CLASS, HONORIFICS

_NAME_WORD = re.compile(r"^[^\W\d_](?:[^\W\d_]|['’.-])*$")
# The words after an introduction, up to the end of the clause; "Dr." does not end it.
_NAME_TEXT = r"(?P<name>(?:(?:dr|mr|mrs|ms|prof)\.\s*)*[^,.!?;]+)"
# Introductions whose next words are a name whatever their case.
_INTRO = re.compile(
    r"(?:my name is|my name's|the name is|the name's|\bname's|\bname is|call me|under the name|put it under"
    r"|book it under|mein name ist|mein name wäre|der name ist|der name wäre|\bname ist|ich heiße|ich heisse"
    r"|hier spricht|auf den namen|unter dem namen|unter dem namen von|nachname ist|vorname ist|last name is"
    r"|surname is|first name is)\s+" + _NAME_TEXT, re.IGNORECASE)
# Introductions that also start ordinary sentences ("I'm due", "it's fine", "ich bin neu").
_WEAK_INTRO = re.compile(
    r"(?:\bthis is|\bi am|\bi'm|\bit's|\bit is|\bhier ist|\bich bin|\bes ist|\bdas ist)\s+" + _NAME_TEXT,
    re.IGNORECASE)
_SAYS_NAME_AFTER = re.compile(r"(?:^|[,!?;]\s*|(?<!dr)(?<!mr)(?<!mrs)(?<!ms)(?<!prof)\.\s*)"
                              r"(?P<name>(?:(?:dr|mr|mrs|ms|prof)\.\s*)*[^,.!?;]+?)\s+(?:ist mein name|mein name|is my name|here"
                              r"|hier|speaking|am apparat)\b", re.IGNORECASE)
_LAST_FIRST = re.compile(r"(?:last name|surname|nachname)\s+(?P<last>[^,.!?;]+)[,.;]?\s+(?:and\s+|und\s+)?"
                         r"(?:first name|vorname)\s+(?P<first>[^,.!?;]+)", re.IGNORECASE)
_FOR_SOMEONE = re.compile(r"\b(?:for|für)\s+(?:my|meine[nmr]?)\s+(?:dad|father|mum|mom|mother|son|daughter|wife|husband"
                          r"|child|kid|grandmother|grandfather|vater|papa|mutter|mama|sohn|tochter|frau|mann|kind"
                          r"|oma|opa)\b(?:\s+an)?\s*,\s*" + _NAME_TEXT, re.IGNORECASE)
_GREETED = re.compile(r"^\s*(?:hallo|hello|hi|servus|moin|guten tag|guten morgen|tag|grüß gott|ja|yes)\s*,\s*"
                      r"(?P<name>[^,.!?;]+?)\s*,", re.IGNORECASE)
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
# Small words inside names: "Leonie von Arnim", "Vincent van Gogh", "Ana de la Cruz".
PARTICLES = {"von", "van", "de", "da", "di", "du", "del", "della", "der", "den", "ten", "ter", "zu", "le", "la",
             "al", "bin", "ben", "dos", "das", "y", "af"}
_ARTICLES = {"der", "die", "the", "a", "an", "ein", "eine"}
_SPELLED = re.compile(r"^(?:[^\W\d_]-)+[^\W\d_]$|^[^\W\d_]$")


def _capitalised(word: str) -> str:
    """"jan-erik" -> "Jan-Erik", "o'brien" -> "O'brien"; a word with capitals stays as it is."""
    if any(ch.isupper() for ch in word):
        return word
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))


def _name_words(words: list[str]) -> str | None:
    """The words as a name (capitalised where the transcript left them lower case), or None."""
    kept: list[str] = []
    for index, word in enumerate(words):
        bare = word.strip(".,!?;:'\"")
        if not bare:
            continue
        lowered = bare.lower()
        if lowered in TITLES and all(k.lower().rstrip(".") in TITLES for k in kept):
            titled = word.strip(",!?;:'\"")
            kept.append(titled[:1].upper() + titled[1:])
            continue
        if lowered in PARTICLES and kept and index < len(words) - 1 and \
                any(k.lower().rstrip(".") not in TITLES for k in kept):
            kept.append(lowered)
            continue
        if not _NAME_WORD.match(bare) or lowered in CLOSED_CLASS or len(bare) < 2:
            return None
        kept.append(_capitalised(bare))
    names = [w for w in kept if w.lower().rstrip(".") not in TITLES]
    if not names or len(names) > 5 or kept[-1].lower() in PARTICLES:
        return None
    if len(names) >= 2 and names[0] == names[1]:
        kept.remove(names[0])  # "Siobhan, Siobhan Kelly": the first name, then the whole name
    elif len(names) >= 3 and names[0] == names[-1]:
        kept.remove(names[0])  # "Özdemir, Ayşe Özdemir": the surname, then the whole name
    return " ".join(kept)


def _cased(text: str) -> bool:
    """Does the transcript write capitals (it starts a sentence with one, or has one later, other
    than "I")? Then a name is written with one too; an all-lower-case transcript is read as it is."""
    words = re.findall(r"[^\W\d_][\w'’-]*", text)
    return bool(words) and (words[0][:1].isupper() or any(w[:1].isupper() and w != "I" for w in words[1:]))


def _first_name_in(candidate: str, *, strict_case: bool) -> str | None:
    words = candidate.split()
    while words and words[0].lower() in _ARTICLES:
        words = words[1:]
    for length in range(min(len(words), 5), 0, -1):
        chosen = words[:length]
        if strict_case and not all(w[:1].isupper() or w.lower() in PARTICLES for w in chosen):
            continue
        name = _name_words(chosen)
        if name:
            return name
    return None


def _restated(name: str, after: str) -> str:
    """"It's Siobhan, Siobhan Kelly": a name said again, longer, right after it is the name."""
    again = re.match(r"\s*,\s*(?P<more>[^,.!?;]+)", after)
    if again and again["more"].split()[:1] == name.split()[-1:]:
        longer = _first_name_in(again["more"], strict_case=False)
        if longer and len(longer.split()) > len(name.split()):
            return longer
    return name


def _last_name_in(candidate: str) -> str | None:
    """A name at the end of a clause ("Dr. Albrecht hier", "also Wolff hier")."""
    words = candidate.split()
    for start in range(max(0, len(words) - 5), len(words)):
        name = _name_words(words[start:])
        if name:
            return name
    return None


def introduced_name(text: str) -> str | None:
    """A name the caller introduced or corrected in a sentence, else None."""
    last_first = _LAST_FIRST.search(text)
    if last_first:
        first, last = _first_name_in(last_first["first"], strict_case=False), \
            _first_name_in(last_first["last"], strict_case=False)
        if first and last:
            return f"{first} {last}"
    for pattern, strict in ((_INTRO, False), (_FOR_SOMEONE, _cased(text)), (_WEAK_INTRO, _cased(text))):
        for match in pattern.finditer(text):
            name = _first_name_in(match.group("name"), strict_case=strict)
            if name:
                return _restated(name, text[match.end():])
    for match in _SAYS_NAME_AFTER.finditer(text):
        name = _last_name_in(match.group("name"))
        if name:
            return name
    greeted = _GREETED.match(text)
    if greeted and _cased(text):
        return _first_name_in(greeted.group("name"), strict_case=True)
    return None


def is_correction(text: str) -> bool:
    """'No, the name is …' / 'Nein, ich heiße …': a name said to replace the one understood."""
    return bool(_CORRECTION.search(text))


def name_from_answer(text: str, *, allowed: set[str] = frozenset()) -> str | None:
    """A name given as the answer to "what is your name?", or None when the answer is no name.

    `allowed`: further words the answer may hold besides the name (the day and time the
    caller added, which the caller of this function has read already).
    """
    if text.strip().endswith("?"):
        return None
    introduced = introduced_name(text)
    if introduced:
        return introduced
    found = [_answer_name(sentence, allowed=allowed, cased=_cased(text))
             for sentence in re.split(r"(?<!\bDr)(?<!\bdr)(?<!\bMr)(?<!\bMs)(?<!\bMrs)(?<!\bProf)(?<=[^\W\d_]{2})\.\s+",
                                      text)]
    found = [name for name in found if name]
    return max(found, key=lambda name: len(name.split())) if found else None


def _answer_name(text: str, *, allowed: set[str], cased: bool) -> str | None:
    words = [w.strip(".") if w.lower().rstrip(".") not in TITLES else w
             for w in re.split(r"[\s,;!?]+", text.strip()) if w.strip(".")]
    words = [w for w in words if w.lower() not in ANSWER_FILLERS and w.lower() not in allowed
             and not any(ch.isdigit() for ch in w) and not _SPELLED.match(w)]
    # The name is the one run of words that are no words of the language (titles in front,
    # particles inside); every other word must be one ("Das ist für meine Tochter, Lisa Braun",
    # "Kowalczyk, hinten mit c-z-y-k"), never an unknown one ("Moment, ich muss überlegen").
    runs: list[list[str]] = [[]]
    for index, word in enumerate(words):
        lowered = word.lower()
        inside = runs[-1] and index + 1 < len(words) and words[index + 1].lower() not in CLOSED_CLASS
        if lowered not in CLOSED_CLASS or lowered.rstrip(".") in TITLES or (lowered in PARTICLES and inside):
            runs[-1].append(word)
        elif runs[-1]:
            runs.append([])
    runs = [run for run in runs if run]
    if len(runs) != 1:
        return None
    if cased and not all(w[:1].isupper() or w.lower() in PARTICLES for w in runs[0]):
        return None
    return _name_words(runs[0])

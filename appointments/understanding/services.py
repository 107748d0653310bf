"""Which of a company's services a caller means, from how they name it.

Callers rarely say the catalogue's name: they say "Kontrolle" for Kontrolluntersuchung,
"Beratungstermin" for Beratungsgespräch, "cleaning" for Teeth cleaning, "check-up",
"checkup" or "check up", and at a German practice an English caller says "cleaning". A
service matches on a whole word of its name, a shared stem of a compound (at least five
letters, most of the shorter word), a compound's head ("Reinigung" in "Zahnreinigung"),
or a word of the same meaning in the other language (a small table of the words practices
use). When two services match equally well the caller is asked which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import get_close_matches

from .lexicon import CLOSED_CLASS, ascii_variants

# Words of one meaning, German and English, as practices and callers use them.
CONCEPTS = [
    {"cleaning", "clean", "cleaned", "reinigung", "reinigen", "zahnreinigung", "prophylaxe", "pzr", "hygiene", "polishing", "politur"},
    {"checkup", "check", "checked", "checking", "exam", "examination", "kontrolle", "kontrolluntersuchung",
     "untersuchung", "vorsorge", "vorsorgeuntersuchung", "routine", "nachsorge", "checkups"},
    {"consultation", "consult", "beratung", "beraten", "beratungsgespräch", "beratungstermin", "advice", "gespräch"},
    {"whitening", "bleaching", "aufhellung", "aufhellen", "zahnaufhellung", "whiter", "whiten", "weißer",
     "weisser"},
    {"filling", "fillings", "füllung", "füllungen", "plombe", "cavity", "karies"},
    {"emergency", "toothache", "pain", "schmerzen", "zahnschmerzen", "notfall", "akut"},
    {"xray", "x-ray", "röntgen", "roentgen"},
    {"crown", "krone", "kronen"},
    {"extraction", "ziehen", "extraktion", "zahnziehen"},
]
_CONCEPT_WORDS = {word for concept in CONCEPTS for word in concept}
# Words that name no service of their own ("Professionelle Zahnreinigung" is found by its second word).
GENERIC = {"termin", "appointment", "behandlung", "treatment", "service", "leistung", "professionelle",
           "professional", "zahn", "zähne", "teeth", "tooth", "dental", "new", "neue", "patient", "und", "and",
           "for", "für", "mit", "with", "the", "die", "der", "das", "a", "an"}
MIN_STEM = 6


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-zäöüß]+(?:-[a-zäöüß]+)*", text.lower())]


def _forms(text: str, *, said: bool = False) -> set[str]:
    """Each word, hyphens dropped and split, and each two neighbours joined ("check up" -> "checkup");
    for what a caller said, without the words of the language that name nothing ("unter", "termin")."""
    words = _words(text)
    if said:
        words = [w for w in words if w not in CLOSED_CLASS or w in _CONCEPT_WORDS]
    forms: set[str] = set()
    for word in words:
        forms |= {word, word.replace("-", ""), *word.split("-")}
    for first, second in zip(words, words[1:], strict=False):
        forms.add(first + second)
    return {variant for form in forms if len(form) >= 3 for variant in ascii_variants(form)}


def _close(said: str, name_word: str) -> int:
    """How well a said word names a word of a service name: 0 (not at all) up to 3 per letter."""
    if said == name_word:
        return 3 * len(said)
    shorter = min(len(said), len(name_word))
    prefix = 0
    for a, b in zip(said, name_word, strict=False):
        if a != b:
            break
        prefix += 1
    if prefix >= MIN_STEM and prefix >= 0.6 * shorter:
        return 2 * prefix
    if shorter >= MIN_STEM and (name_word.endswith(said) or said.endswith(name_word)):
        return 2 * shorter
    return 0


def _with_meanings(forms: set[str]) -> set[str]:
    expanded = set(forms)
    own = forms - GENERIC
    for concept in CONCEPTS:
        if any(_close(form, word) for form in own for word in concept):
            expanded |= {variant for word in concept for variant in ascii_variants(word)}
    return expanded


def _score(said_forms: set[str], said_text: str, name: str) -> int:
    lowered = name.lower()
    if re.search(rf"(?<![\w]){re.escape(lowered)}(?![\w])", said_text):
        return 1000 + len(lowered)
    score = 0
    for name_word in _forms(name) - GENERIC:
        best = max((_close(form, name_word) for form in said_forms if form not in GENERIC), default=0)
        score = max(score, best)
    return score


def match_services(said: str, names: Iterable[str]) -> list[str]:
    """The service names the caller means, best first: one, or several when they named several
    ("eine Kontrolle und eine Reinigung") or one word fits several equally."""
    names = list(names)
    said_text = " " + " ".join(_words(said)) + " "
    whole = [name for name in names if re.search(rf"(?<![\w]){re.escape(name.lower())}(?![\w])", said_text)]
    for name in sorted(whole, key=len, reverse=True):
        said_text = said_text.replace(name.lower(), " ")  # a part of a name said whole names nothing else
    whole = [name for name in whole if not any(name != other and name.lower() in other.lower() for other in whole)]
    forms = _forms(said_text, said=True)
    rest = [name for name in names if name not in whole]
    # A word that names no service itself may name one by its meaning ("PZR", "cleaned", "whiter").
    unmatched = {form for form in forms if not any(_close(form, word) for name in rest
                                                   for word in _forms(name) - GENERIC)}
    forms |= _with_meanings(unmatched) - unmatched
    scores = {name: _score(forms, said_text, name) for name in rest}
    found = whole + sorted((name for name, score in scores.items() if score >= 2 * MIN_STEM), key=lambda n: -scores[n])
    if not found and said.strip():
        # A misheard or misspelt name ("Zahnreinigun", "check-upp"): the closest whole name.
        close = get_close_matches(" ".join(_words(said)), [n.lower() for n in names], n=1, cutoff=0.8)
        found = [name for name in names if close and name.lower() == close[0]]
    return found


def match_service(said: str, names: Iterable[str]) -> str | None:
    """The one service meant, or None (nothing matched, or two matched equally)."""
    found = match_services(said, names)
    return found[0] if len(found) == 1 else None


_SERVICE_AFTER = re.compile(
    r"\b(?:(?:book|schedule|get|need|want|have)\s+(?:a|an)|for\s+(?:a|an|my)|für\s+(?:eine[nm]?|meine[nm]?)"
    r"|zur|zum)\s+([a-zäöüß-]+(?: [a-zäöüß-]+){0,2})", re.IGNORECASE)
_NOT_SERVICES = {"appointment", "appointments", "termin", "time", "day", "date", "moment", "second", "minute",
                 "person", "human", "someone", "call", "booking", "question", "price", "new", "quick", "sprechstunde",
                 "rückruf", "callback", "nächsten", "a", "praxis", "practice", "office", "tochter", "sohn", "mann",
                 "frau", "mutter", "vater", "kind", "daughter", "son", "wife", "husband", "mother", "father", "child",
                 "kids", "family", "familie", "arbeitgeber", "employer", "bescheinigung", "rezept", "prescription"}
_SERVICE_STOPS = {"at", "on", "in", "for", "please", "and", "with", "um", "am", "an", "bitte", "und", "mit", "next",
                  "this", "the", "tomorrow", "today", "morgen", "heute", "kommen", "vorbeikommen", "gehen"}


_LEADING = re.compile(r"^(?:(?:yes|yeah|well|so|um|uh|ja|also|äh|ähm|gerne?|bitte|please|i'?d like|i need|i want"
                      r"|ich möchte|ich hätte gern|ich brauche|for|für|a|an|the|ein|eine|einen|einer|der|die|das|den"
                      r"|zur|zum)\b[\s,.!]*)+", re.IGNORECASE)


def bare_answer(text: str) -> str:
    """An answer without its leading fillers and article: "A root canal treatment." -> "root canal treatment"."""
    return re.sub(r"\s+", " ", _LEADING.sub("", text.strip())).strip(" .,!?")


def service_phrase(text: str, skip: Iterable[str] = ()) -> str | None:
    """A service the caller named that is not in the catalogue: the words after "book a", "zur" ..."""
    skip = {s.lower() for s in skip}
    for m in _SERVICE_AFTER.finditer(text):
        words = []
        for word in m.group(1).split():
            lowered = word.lower()
            if lowered in _SERVICE_STOPS or lowered in skip:
                break
            if lowered not in _NOT_SERVICES:
                words.append(word)
        if words:
            return " ".join(words)
    return None

"""The offline recogniser's language: a trigram language model and a pronunciation dictionary built
from a company's own words, so pocketsphinx hears what callers of this company say.

The corpus is sentences a caller says to a receptionist, from templates filled with
- the company's services (and the words callers use for them: "cleaning" for "Teeth cleaning",
  "checkup" / "check up" / "exam" for "Check-up": the understanding's table of meanings),
- days (today, tomorrow, weekdays, "next Tuesday", "the fifth of May"), times ("ten", "ten thirty",
  "half past ten", "ten a.m.", "noon"), parts of the day, digits for phone numbers,
- yes / no and corrections, the names asked for (the caller's name), and what the receptionist asks
  and is asked about (book, move, cancel, opening hours, address, prices, a person, goodbye).
The numbers, ordinals, weekdays, months and parts of the day are the understanding's lexicon
(`appointments.understanding.lexicon`), so the recogniser writes what the understanding reads.

English (en-US) only: pocketsphinx's bundled acoustic model and dictionary are US English.
Pronunciations come from the bundled CMU dictionary; a word it lacks (a surname such as
"Mustermann") is pronounced by eSpeak NG's US-English voice and its IPA mapped to the model's
phones; a word neither knows is left out and listed in `Vocabulary.missing`. Plain Python, no Django.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appointments.understanding.lexicon import DAYPART_WORDS, ENGLISH_NUMBERS, MONTH_NAMES, WEEKDAY_NAMES
from appointments.understanding.services import CONCEPTS, match_service

LANGUAGE = "en"

# Names callers commonly give, so a name outside the hints is still words and not noise.
COMMON_FIRST_NAMES = ("john", "mary", "james", "patricia", "robert", "jennifer", "michael", "linda", "william",
                      "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
                      "charles", "karen", "daniel", "nancy", "matthew", "lisa", "anna", "emma", "peter", "paul",
                      "mark", "laura", "kevin", "emily", "brian", "amy", "jane", "alex", "anne", "tom", "kate")
COMMON_LAST_NAMES = ("smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
                     "martinez", "wilson", "anderson", "taylor", "thomas", "moore", "jackson", "martin", "lee",
                     "thompson", "white", "harris", "clark", "lewis", "walker", "hall", "young", "king", "wright",
                     "green", "baker", "adams", "nelson", "hill", "campbell", "mitchell", "roberts", "carter",
                     "phillips", "evans", "turner", "parker", "collins", "edwards", "stewart", "morris", "murphy",
                     "cook", "rogers", "morgan", "cooper", "peterson", "reed", "bailey", "bell", "kelly", "howard",
                     "ward", "cox", "richardson", "wood", "watson", "brooks", "bennett", "gray", "james", "hughes",
                     "price", "myers", "long", "foster", "sanders", "ross", "powell", "sullivan", "russell",
                     "fisher", "mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker")

_DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_HOURS = [w for w, n in ENGLISH_NUMBERS.items() if 1 <= n <= 12 and " " not in w and "-" not in w]
_MINUTES = ["fifteen", "thirty", "forty five", "oh five", "ten", "twenty", "forty", "fifty"]
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
             "eighteenth", "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third",
             "twenty fourth", "twenty fifth", "twenty sixth", "twenty seventh", "twenty eighth", "twenty ninth",
             "thirtieth", "thirty first"]
_WEEKDAYS = [name.lower() for name in WEEKDAY_NAMES["en"].values()]
_MONTHS = [name.lower() for name in MONTH_NAMES["en"]]
_DAYPARTS = sorted({phrase for phrase, meaning in DAYPART_WORDS.items()
                    if phrase.isascii() and phrase in {"morning", "afternoon", "evening", "in the morning",
                                                       "in the afternoon", "in the evening", "at noon",
                                                       "lunchtime", "this morning", "this afternoon", "tonight",
                                                       "early morning", "late morning"}})

_BOOK = ["i'd like to book {service}", "i would like to book {service}", "i need {service}",
         "can i get {service}", "can i book {service}", "i want to book {service}", "i'd like {service}",
         "i'd like to schedule {service}", "could i book {service}", "i'd like an appointment for {service}",
         "i'd like to make an appointment for {service}", "do you have time for {service}", "i need to book {service}",
         "hi i'd like to book {service}", "hello i need {service}", "i'm calling to book {service}",
         "i'm due for {service}", "i'd like to come in for {service}", "can i come in for {service}"]
_BOOK_PLAIN = ["i'd like to make an appointment", "i need an appointment", "i'd like to book an appointment",
               "can i make an appointment", "i want to make an appointment", "hi i'd like an appointment",
               "hello i'd like to book an appointment please", "i need to see the dentist",
               "i'd like to see the doctor"]
_WHEN_SENTENCES = ["{when}", "{when} please", "how about {when}", "what about {when}", "can i come {when}",
                   "is {when} possible", "do you have anything {day}", "{when} would be great", "{when} works",
                   "{when} is fine", "maybe {when}", "i can come {when}", "are you free {when}",
                   "do you have something {when}", "is there anything free {day}", "let's say {when}",
                   "no {when} instead", "actually {when}", "no i meant {when}", "make it {when}",
                   "rather {when}", "{when} if possible", "yes {when}"]
_SERVICE_ANSWERS = ["{service}", "for {service}", "it's for {service}", "i need {service}", "just {service}",
                    "{service} please", "i'd like {service}"]
_NAME_SENTENCES = ["my name is {name}", "it's {name}", "{name}", "this is {name}", "the name is {name}",
                   "under {name}", "yes it's {name}", "my name's {name}", "it's under {name}", "i'm {name}"]
_PHONE_SENTENCES = ["my number is {digits}", "{digits}", "it's {digits}", "you can reach me at {digits}",
                    "the number is {digits}", "my phone number is {digits}"]
_OTHER = """yes | yes please | yeah | yep | sure | okay | ok | yes that's right | that's right | that's correct |
correct | exactly | perfect | sounds good | great | yes book it | please do | go ahead | yes thank you | alright |
no | no thanks | no thank you | nope | no that's wrong | that's wrong | no that's not right | not quite |
no that's all | that's all thank you | no that's it | that's it thanks | nothing else thanks | no nothing else |
thank you goodbye | thanks bye | bye | goodbye | thank you very much | thanks a lot bye | have a nice day |
hello | hi | hello is anyone there | yes i'm still here | sorry | sorry can you repeat that | pardon |
what did you say | can you say that again | one moment please | hold on | let me check |
i need to cancel my appointment | i want to cancel my appointment | please cancel my appointment |
i can't make my appointment | i need to reschedule my appointment | i'd like to reschedule |
can i move my appointment | i'd like to change my appointment | i need to change the time |
what are your opening hours | when are you open | what time do you open | what time do you close |
are you open today | are you open tomorrow | where are you located | what's your address | where are you |
how much does it cost | what are your prices | how much is it | can i speak to someone | can i talk to a person |
can i speak to a human | put me through to someone please | i'd like to speak to the receptionist |
i have a question | i'm a new patient | i'm an existing patient | do you have anything free this week |
do you have anything next week | what times do you have | what's the earliest you have | anything later |
anything earlier | the first one | the second one | the last one | that one please | the earlier one |
the later one"""
_PRICE = ["how much is {service}", "how much does {service} cost", "what does {service} cost",
          "what's the price of {service}", "what do you charge for {service}"]
_MOVE = ["can i move my appointment to {when}", "i'd like to move my appointment to {when}",
         "i want to cancel my appointment {day}", "please cancel my appointment {day}",
         "i need to reschedule my appointment {day}", "are you open {day}", "i can't make it {day}",
         "my appointment {day} please"]


def _spoken_words(text: str) -> list[str]:
    """Lower-case words as the dictionary spells them: "Check-up," -> ["check-up"] is handled by
    `_dictionary_forms`; here only punctuation goes."""
    return [w for w in re.findall(r"[a-z0-9']+(?:[-.][a-z0-9']+)*\.?", text.lower()) if w.strip("'.")]


@dataclass(frozen=True)
class Vocabulary:
    """A built language: `arpa` (trigram model, ARPA text), `dictionary` (pocketsphinx dictionary
    lines), `words` (what can be recognised), `missing` (hint words without a pronunciation,
    left out), `key` (stable hash: same hints, same key)."""

    key: str
    arpa: str
    dictionary: str
    words: frozenset[str]
    missing: tuple[str, ...]
    sentences: int


class Pronunciations:
    """The bundled CMU dictionary, read once: word -> its pronunciation lines."""

    _lock = threading.Lock()
    _entries: dict[str, list[str]] | None = None

    @classmethod
    def entries(cls, path: Path) -> dict[str, list[str]]:
        with cls._lock:
            if cls._entries is None:
                entries: dict[str, list[str]] = {}
                for line in path.read_text(encoding="utf-8").splitlines():
                    head, _, rest = line.partition(" ")
                    if rest:
                        entries.setdefault(head.split("(")[0], []).append(line)
                cls._entries = entries
            return cls._entries


# eSpeak NG's IPA -> the CMU phones of pocketsphinx's model (two-letter sounds first).
_IPA_PHONES = {
    "tʃ": "CH", "dʒ": "JH", "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "ɜː": "ER",
    "ɑː": "AA", "ɔː": "AO", "uː": "UW", "iː": "IY", "ɪə": "IH R", "eə": "EH R", "ʊə": "UH R",
    "ɑ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɔ": "AO", "ɒ": "AA", "ɛ": "EH", "e": "EH", "ɜ": "ER",
    "ɚ": "ER", "ɝ": "ER", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "ʊ": "UH", "u": "UW", "o": "OW", "a": "AE", "y": "UW",
    "b": "B", "d": "D", "ð": "DH", "f": "F", "ɡ": "G", "g": "G", "h": "HH", "j": "Y", "k": "K", "l": "L", "ɫ": "L",
    "m": "M", "n": "N", "ŋ": "NG", "p": "P", "ɹ": "R", "r": "R", "ɾ": "T", "s": "S", "ʃ": "SH", "t": "T",
    "θ": "TH", "v": "V", "w": "W", "z": "Z", "ʒ": "ZH", "x": "K", "ç": "HH",
}
_IPA_MARKS = set("ˈˌːˑ̩̃ʔ-_ ")


def phones_from_ipa(ipa: str) -> str | None:
    """CMU phones for eSpeak NG's IPA ("mˈʌstɚmən" -> "M AH S T ER M AH N"); None for a sound
    without one."""
    phones, i = [], 0
    while i < len(ipa):
        if ipa[i] in _IPA_MARKS:
            i += 1
            continue
        pair = ipa[i:i + 2]
        if pair in _IPA_PHONES:
            phones.append(_IPA_PHONES[pair])
            i += 2
        elif ipa[i] in _IPA_PHONES:
            phones.append(_IPA_PHONES[ipa[i]])
            i += 1
        else:
            return None
    return " ".join(phones) or None


def _pronounced_by_espeak(word: str) -> str | None:
    from . import espeak

    if not re.fullmatch(r"[a-z']+", word):
        return None
    phones = phones_from_ipa(espeak.phonemes(word, voice="en-us"))
    return f"{word} {phones}" if phones else None


def _dictionary_forms(word: str, known: dict[str, list[str]]) -> list[str] | None:
    """The dictionary words for one spoken word: itself, "check-up" -> "checkup" or "check up",
    "a.m." as it is; None when some part has no pronunciation."""
    if word in known:
        return [word]
    bare = word.rstrip(".")
    if bare in known:
        return [bare]
    if "-" in word or "." in bare:
        joined = re.sub(r"[-.]", "", bare)
        if joined in known:
            return [joined]
        parts = [p for p in re.split(r"[-.]", bare) if p]
        if parts and all(p in known for p in parts):
            return parts
    return None


# Words of the understanding's table of meanings that are verbs or adjectives, not a service's name.
_NOT_A_NAME = {"check", "checked", "checking", "clean", "cleaned", "consult", "whiten", "whiter", "advice"}


def _service_phrases(service: str, speakable=lambda word: True) -> list[str]:
    """How a caller names a service: its name, its words, and the words of the same meaning
    that the understanding maps to it ("exam" for "Check-up") that `speakable` accepts."""
    phrases = {service.lower()}
    words = _spoken_words(service)
    phrases.update(w for w in words if len(w) > 3)
    for concept in CONCEPTS:
        for word in concept - _NOT_A_NAME:
            if word.isascii() and speakable(word) and match_service(word, [service]) == service:
                phrases.add(word)
    return sorted(phrases)


def _with_article(phrase: str) -> list[str]:
    article = "an" if phrase[:1] in "aeiou" else "a"
    return [f"{article} {phrase}", phrase, f"an appointment for {article} {phrase}", f"{article} {phrase} appointment",
            f"my {phrase}"]


def caller_sentences(services: Iterable[str] = (), names: Iterable[str] = (), phrases: Iterable[str] = (), *,
                     speakable=lambda word: True, seed: int = 14) -> list[str]:
    """What callers of a company with these services say, lower case: a few thousand sentences
    (deterministic for the same input). `speakable(word)` says whether a synonym of a service
    can be used (has a pronunciation)."""
    rng = random.Random(seed)
    services = [s for s in services if s and s.strip()] or ["check-up", "cleaning", "consultation"]
    service_forms = sorted({form for s in services for p in _service_phrases(s, speakable) for form in _with_article(p)})
    first = list(COMMON_FIRST_NAMES)
    last = list(COMMON_LAST_NAMES)
    hinted = [" ".join(_spoken_words(n)) for n in names if _spoken_words(n)]
    for name in hinted:
        parts = name.split()
        first.append(parts[0])
        if len(parts) > 1:
            last.append(parts[-1])

    def hour() -> str:
        return rng.choice(_HOURS)

    def clock() -> str:
        h = hour()
        return rng.choice([h, h, f"{h} o'clock", f"{h} {rng.choice(_MINUTES)}", f"{h} a.m.", f"{h} p.m.",
                           f"half past {h}", f"quarter past {h}", f"quarter to {h}", "noon", f"{h} in the morning",
                           f"{h} in the afternoon"])

    def day() -> str:
        weekday, month, ordinal = rng.choice(_WEEKDAYS), rng.choice(_MONTHS), rng.choice(_ORDINALS)
        return rng.choice(["today", "tomorrow", "tomorrow", "the day after tomorrow", f"on {weekday}", weekday,
                           f"next {weekday}", f"this {weekday}", f"on {month} {ordinal}", f"on the {ordinal}",
                           f"the {ordinal} of {month}", "next week", "this week", f"{weekday} next week"])

    def when() -> str:
        return rng.choice([day(), f"{day()} at {clock()}", f"{day()} at {clock()}", f"at {clock()}",
                           f"{day()} {rng.choice(_DAYPARTS)}", f"{day()} around {clock()}"])

    def name() -> str:
        if hinted and rng.random() < 0.5:
            return rng.choice(hinted)
        return rng.choice([f"{rng.choice(first)} {rng.choice(last)}", rng.choice(first), rng.choice(last)])

    def digits() -> str:
        return " ".join(rng.choice(_DIGITS[1:] if i == 0 else _DIGITS) for i in range(rng.randint(3, 11)))

    def fill(template: str) -> str:
        return (template.replace("{service}", rng.choice(service_forms)).replace("{when}", when())
                .replace("{day}", day()).replace("{name}", name()).replace("{digits}", digits()))

    out: list[str] = []
    for _ in range(900):
        out.append(fill(rng.choice(_BOOK)) + rng.choice(["", "", f" {when()}", f" {when()} please"]))
    for _ in range(600):
        out.append(fill(rng.choice(_WHEN_SENTENCES)))
    for _ in range(200):
        out.append(fill(rng.choice(_BOOK_PLAIN)) + rng.choice(["", f" {when()}", f" for {when()}"]))
    for template in _SERVICE_ANSWERS + _PRICE:
        out.extend(fill(template) for _ in range(25))
    for _ in range(400):
        out.append(fill(rng.choice(_NAME_SENTENCES)))
    for _ in range(300):
        out.append(fill(rng.choice(_PHONE_SENTENCES)))
    for template in _MOVE:
        out.extend(fill(template) for _ in range(20))
    other = [s.strip() for s in _OTHER.replace("\n", " ").split("|") if s.strip()]
    out.extend(other * 8)
    out.extend(" ".join(_spoken_words(p)) for p in phrases for _ in range(5) if _spoken_words(p))
    out.extend(" ".join(_spoken_words(f)) for f in service_forms for _ in range(3))
    return [" ".join(s.split()) for s in out if s.strip()]


def build_vocabulary(services: Iterable[str] = (), names: Iterable[str] = (), phrases: Iterable[str] = (), *,
                     dictionary_path: Path) -> Vocabulary:
    """The language model and dictionary for a company's words (a fraction of a second).

    `dictionary_path`: the bundled CMU dictionary (pocketsphinx's model/en-us/cmudict-en-us.dict)."""
    from pocketsphinx.lm import ArpaBoLM

    services, names, phrases = tuple(services), tuple(names), tuple(phrases)
    known = dict(Pronunciations.entries(dictionary_path))
    # The company's own words the CMU dictionary lacks are pronounced by eSpeak NG instead.
    own = {w for text in (*services, *names, *phrases) for w in _spoken_words(text)}
    for word in own:
        if _dictionary_forms(word, known) is None:
            entry = _pronounced_by_espeak(word)
            if entry is not None:
                known[word] = [entry]
    missing: set[str] = set()
    lines: list[str] = []
    for sentence in caller_sentences(services, names, phrases, speakable=lambda word: word in known):
        words: list[str] = []
        for word in sentence.split():
            forms = _dictionary_forms(word, known)
            if forms is None:
                missing.add(word)
            else:
                words.extend(forms)
        if words:
            lines.append(" ".join(words))
    model = ArpaBoLM(add_start=True, discount_mass=0.2)
    model.read_corpus(io.StringIO("\n".join(lines)))
    model.compute()
    arpa = io.StringIO()
    model.write(arpa)
    vocabulary = sorted({w for line in lines for w in line.split()})
    dictionary = "\n".join(entry for word in vocabulary for entry in known[word]) + "\n"
    key = hashlib.sha256(repr((services, names, phrases)).encode()).hexdigest()[:16]
    return Vocabulary(key=key, arpa=arpa.getvalue(), dictionary=dictionary, words=frozenset(vocabulary),
                      missing=tuple(sorted(missing)), sentences=len(lines))

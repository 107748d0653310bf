"""The words the understanding knows, in German and English: numbers, ordinals, days, months,
parts of the day, and the small words that are never a name.

Everything here is data; the modules beside it build their patterns from it. Numbers and
ordinals are generated (German compounds such as "fünfundvierzig" / "vierundzwanzigsten",
English "forty-five" / "twenty-fourth"), each also in its ASCII spelling (ue, oe, ae, ss),
since transcripts and LLM arguments use both.
"""

from __future__ import annotations

import re


def ascii_variants(word: str) -> set[str]:
    """The word and its umlaut-free spelling: "fünf" -> {"fünf", "fuenf"}."""
    plain = word.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    return {word, plain}


# --- numbers ------------------------------------------------------------------------------------

_DE_UNITS = {1: "eins", 2: "zwei", 3: "drei", 4: "vier", 5: "fünf", 6: "sechs", 7: "sieben", 8: "acht", 9: "neun"}
_DE_TEENS = {10: "zehn", 11: "elf", 12: "zwölf", 13: "dreizehn", 14: "vierzehn", 15: "fünfzehn", 16: "sechzehn",
             17: "siebzehn", 18: "achtzehn", 19: "neunzehn"}
_DE_TENS = {20: "zwanzig", 30: "dreißig", 40: "vierzig", 50: "fünfzig", 60: "sechzig", 70: "siebzig", 80: "achtzig",
            90: "neunzig"}
_EN_UNITS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
_EN_TEENS = {10: "ten", 11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen", 16: "sixteen",
             17: "seventeen", 18: "eighteen", 19: "nineteen"}
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
            90: "ninety"}


def _german_numbers() -> dict[str, int]:
    words = {"null": 0, "ein": 1, "zwo": 2, **{w: n for n, w in _DE_UNITS.items()},
             **{w: n for n, w in _DE_TEENS.items()}, **{w: n for n, w in _DE_TENS.items()}}
    for tens, tens_word in _DE_TENS.items():
        for unit, unit_word in _DE_UNITS.items():
            words[("ein" if unit == 1 else unit_word) + "und" + tens_word] = tens + unit
    return words


def _english_numbers() -> dict[str, int]:
    words = {"zero": 0, **{w: n for n, w in _EN_UNITS.items()}, **{w: n for n, w in _EN_TEENS.items()},
             **{w: n for n, w in _EN_TENS.items()}}
    for tens, tens_word in _EN_TENS.items():
        for unit, unit_word in _EN_UNITS.items():
            words[f"{tens_word}-{unit_word}"] = tens + unit
            words[f"{tens_word} {unit_word}"] = tens + unit
    return words


def _with_variants(words: dict[str, int]) -> dict[str, int]:
    return {variant: n for word, n in words.items() for variant in ascii_variants(word)}


GERMAN_NUMBERS = _with_variants(_german_numbers())
ENGLISH_NUMBERS = _english_numbers()
NUMBER_WORDS = {**GERMAN_NUMBERS, **ENGLISH_NUMBERS}


def _ordinals() -> dict[str, int]:
    german = {1: "erste", 2: "zweite", 3: "dritte", 4: "vierte", 5: "fünfte", 6: "sechste", 7: "siebte",
              8: "achte", 9: "neunte"}
    words: dict[str, int] = {"siebente": 7}
    for n, w in german.items():
        words[w] = n
    for n, w in _DE_TEENS.items():
        words[w + "te"] = n
    for tens, tens_word in _DE_TENS.items():
        words[tens_word + "ste"] = tens
        for unit, unit_word in _DE_UNITS.items():
            if tens + unit <= 31:
                words[("ein" if unit == 1 else unit_word) + "und" + tens_word + "ste"] = tens + unit
    english = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
               9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth", 14: "fourteenth",
               15: "fifteenth", 16: "sixteenth", 17: "seventeenth", 18: "eighteenth", 19: "nineteenth",
               20: "twentieth", 30: "thirtieth"}
    for n, w in english.items():
        words[w] = n
    for unit in range(1, 10):
        words[f"twenty-{english[unit]}"] = 20 + unit
        words[f"twenty {english[unit]}"] = 20 + unit
    words["thirty-first"] = words["thirty first"] = 31
    inflected = {}
    for word, n in words.items():
        inflected[word] = n
        if word.endswith("e"):  # German endings: ersten, erster, erstes, erstem
            for ending in "nrsm":
                inflected[word + ending] = n
    return _with_variants(inflected)


ORDINAL_WORDS = _ordinals()


def number_pattern(words: dict[str, int] = NUMBER_WORDS, *, digits: int = 2) -> str:
    """A regex alternative matching a number as digits (up to `digits` of them) or as a word."""
    alternatives = sorted(words, key=len, reverse=True)
    return rf"(?:\d{{1,{digits}}}|{'|'.join(re.escape(w) for w in alternatives)})"


def number_value(token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return NUMBER_WORDS.get(token)


# --- days and months -----------------------------------------------------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_WORDS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri", "saturday": "sat",
    "sunday": "sun",
    "montag": "mon", "dienstag": "tue", "mittwoch": "wed", "donnerstag": "thu", "freitag": "fri", "samstag": "sat",
    "sonnabend": "sat", "sonntag": "sun",
}
WEEKDAY_NAMES = {
    "en": {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
           "sat": "Saturday", "sun": "Sunday"},
    "de": {"mon": "Montag", "tue": "Dienstag", "wed": "Mittwoch", "thu": "Donnerstag", "fri": "Freitag",
           "sat": "Samstag", "sun": "Sonntag"},
}
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12, "sept": 9,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11,
    "dec": 12, "okt": 10, "dez": 12,
    "januar": 1, "jänner": 1, "jaenner": 1, "februar": 2, "märz": 3, "maerz": 3, "mai": 5, "juni": 6, "juli": 7,
    "oktober": 10, "dezember": 12,
}
MONTH_NAMES = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
}

# Days with a name of their own (fixed dates only).
HOLIDAYS = {
    "heiligabend": "12-24", "heiligen abend": "12-24", "christmas eve": "12-24", "silvester": "12-31",
    "new year's eve": "12-31", "new years eve": "12-31", "neujahr": "01-01", "new year's day": "01-01",
    "new years day": "01-01", "christmas day": "12-25", "christmas": "12-25", "weihnachten": "12-25",
    "erster weihnachtsfeiertag": "12-25", "ersten weihnachtsfeiertag": "12-25",
    "zweiter weihnachtsfeiertag": "12-26", "zweiten weihnachtsfeiertag": "12-26", "boxing day": "12-26",
}

# Parts of the day as said after or around a time: the canonical name of each.
DAYPART_WORDS = {
    "morgens": "morning", "früh": "morning", "frueh": "morning", "vormittags": "morning", "vormittag": "morning",
    "in der früh": "morning", "am morgen": "morning", "am vormittag": "morning", "morning": "morning",
    "in the morning": "morning", "this morning": "morning", "mornings": "morning",
    "mittags": "noon", "mittag": "noon", "zur mittagszeit": "noon", "lunchtime": "noon", "around lunch": "noon",
    "über die mittagszeit": "noon", "über mittag": "noon", "mittagszeit": "noon", "for lunch": "noon",
    "first thing": "morning", "gleich morgens": "morning", "late morning": "morning", "early morning": "morning",
    "nachmittags": "afternoon", "nachmittag": "afternoon", "am nachmittag": "afternoon", "afternoon": "afternoon",
    "in the afternoon": "afternoon", "this afternoon": "afternoon", "afternoons": "afternoon",
    "abends": "evening", "abend": "evening", "am abend": "evening", "evening": "evening", "in the evening": "evening",
    "this evening": "evening", "tonight": "evening", "evenings": "evening",
    "nachts": "night", "in der nacht": "night", "at night": "night",
}

# --- words that are never (part of) a name ---------------------------------------------------------

_CLOSED_CLASS_DE = """
a ab aber ach ähm äh hm hmm mhm also am an auch auf aus bei beim bin bis bitte bitteschön da dafür dann danke das
dass dem den denn der des dich die dies diese diesem diesen dieser dieses dir doch dort du durch eben eher eigentlich
ein eine einem einen einer eines einfach er es etwa etwas euch falls für gar gegen genau gerade gern gerne gut ganz
hab habe haben hallo hat hätte hätten heute hier hin ich ihm ihn ihnen ihr ihre im immer in ist ja jawohl je jemand
jetzt kann kein keine keinen klar könnte können lieber mal man mehr mein meine meinem meinen meiner mich mir mit
möchte möchten morgen nach nächste nächsten naja nee nein nicht nichts noch nun nur ob oder ohne okay ok prima
richtig schon sehr sein seine sich sie sind so sogar sollte sondern später früher statt stimmt super tag termin uhr
um und uns unser unter vielleicht viel vom von vor wann war wäre warum was weil welche welcher welchen wenn wer wie
wieder wir wird wo wohl würde zu zum zur zwar passt gehen geht kommen komme kann wollte will würden bräuchte brauche
brauchen heiße heisse heißt name namen nummer telefonnummer gleich sofort irgendwann dienstags montags mittwochs
donnerstags freitags samstags sonntags woche wochen tage tagen tagen uhrzeit datum frau herr doktor dr prof
vormittag nachmittag abend mittag morgens abends nachmittags vormittags mittags früh halb viertel dreiviertel kurz
nochmal wiederholen verstanden verstehe moment sekunde entschuldigung sorry tschüss servus moin grüß gott
leider bereits erledigt korrekt falsch einverstanden alles gut super toll schön
patient patientin neupatient neupatientin kunde kundin neu krank verhindert unterwegs erkältet hier da selbst
tochter sohn mann ehemann ehefrau kind kinder mutter vater oma opa
sprechen reden verbinden durchstellen anrufen rufe rufen angerufen wissen glaube denke meine meinte
frage fragen absagen verschieben buchen vereinbaren ändern stornieren kontrolle untersuchung reinigung beratung
zahnreinigung schmerzen zahnschmerzen notfall preis kosten kostet öffnungszeiten adresse
ordnung wunderbar perfekt schade egal möglich lieb nett freundlich
handynummer festnetznummer mobilnummer praxis zahnarzt zahnärztin arzt ärztin kalender arbeitgeber rechnung
befund rezept versichertenkarte karte reicht muss müssen soll sollte darf mache machen überlegen schauen gucken
warten sagen gesagt hoffe suche such kurz dringend
hinten vorne geschrieben schreibt buchstabiert doppel nachname vorname
"""
_CLOSED_CLASS_EN = """
a about actually after again ah all also am an and any anything are around as at be because been before being
both but by can could did do does doing done don't dont for from get good got great had has have having he hello
her here hey hi him his how i i'd i'll i'm i've if in is it it's its just like make me mine more morning most my
need no nope not nothing now of off oh ok okay on one or our out please pm quarter half past perfect right same see
she should so some something sorry sure than thank thanks that that's the their them then there these they this
those through to today tomorrow too uh um under up us very want was we well were what when where which who will
with would yeah yes yep yup you your afternoon evening night noon midnight o'clock oclock appointment time day
date week next instead rather later earlier calling call name number phone booking book fine correct exactly
mr mrs ms miss dr doctor sir madam wait hold moment second minute bye goodbye cheers alright
calling looking trying wondering interested hoping ringing phoning checking going coming waiting afraid glad
happy busy free available late early new existing patient patients customer client here still just not sorry
speak talk person someone somebody human receptionist cancel reschedule move change book cleaning checkup check
price cost costs open hours address my mine daughter son husband wife child kids mother father
know think mean sure maybe possible great wonderful lovely nice
due overdue standing wanted question reasonable fine okay ok sorry wait what thing anything something
calling last first update about regarding following spelled spell double surname
"""
# Months that are also first names ("Mai", "April", "June", "August") stay possible in names.
_MONTHS_NOT_NAMES = {m for m in MONTHS if m not in {"mai", "april", "june", "july", "august", "may"}}
CLOSED_CLASS = ({w for w in _CLOSED_CLASS_DE.split()} | {w for w in _CLOSED_CLASS_EN.split()}
                | set(NUMBER_WORDS) | set(ORDINAL_WORDS) | set(WEEKDAY_WORDS) | _MONTHS_NOT_NAMES
                | {w for phrase in DAYPART_WORDS for w in phrase.split()})
CLOSED_CLASS = {variant for word in CLOSED_CLASS for variant in ascii_variants(word)}

# Titles kept with a name ("Frau Müller"), never a name on their own.
HONORIFICS = {"frau", "herr", "dr", "dr.", "doktor", "prof", "prof.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.",
              "miss"}

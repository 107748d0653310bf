"""What a caller wants and whether they said yes or no, in German and English; and which of
the two languages they speak."""

from __future__ import annotations

import re

INTENT_PATTERNS = {
    "reschedule": r"reschedul\w*|\bmove (?:my|the|it|our)\b|postpone|push (?:it|my appointment) back"
                  r"|change (?:my|the) appointment|another (?:day|time)|different (?:day|time)"
                  r"|verschieb\w*|umbuch\w*|\bumleg\w*|\bverleg\w*|anderen termin|termin ändern|\bändern\b"
                  r"|später kommen|früher kommen|\b(?:an)?statt\b|instead of|\blegen\b|\bschieben\b"
                  r"|push (?:it|my appointment|the appointment)|\bbump\b|move (?:it|my \w+|the \w+) (?:up|to|back)"
                  r"|be moved|change the (?:day|date|time)|verschoben werden|vorziehen|nach hinten|nach vorne"
                  r"|zusammenlegen|combine (?:them|the)",
    "cancel": r"cancel\w*|call off|can'?t (?:make it|come)|won'?t (?:make it|be able)|absag\w*|abzusagen"
              r"|stornier\w*|\bstreichen\b|nicht kommen|schaffe es nicht|schaff's nicht|ausfallen|fällt aus"
              r"|\bsag\w*\b[^.?!]*\bab\b|\bkann\b[^.?!]{0,30}\bnicht\s*(?:kommen)?\s*[.!]?\s*$"
              r"|nicht wahrnehmen|\baustragen\b|tragen sie mich aus|brauche ich nicht mehr|\bstorno\b"
              r"|take me off|don'?t need (?:the|my|it)\b[^.?!]*\banymore|no longer need",
    "book": r"\bbook\w*|appointment|\bschedule\b|make an? (?:appointment|booking)|come in\b|come by|get (?:a|an) "
            r"|see the (?:doctor|dentist|hygienist)|termin\w*|buchen|vereinbar\w*|anmelden|reservier\w*"
            r"|\bkommen\b|vorbeikommen|vorbei kommen|drankommen|get in\b|squeeze me in|fit me in|due for"
            r"|machen lassen|i'?d like (?:a|an|to get)",
    "availability": r"\bavailab\w*|\bfree\b|any (?:slots?|openings)|have any time|an opening|openings|have (?:anything|"
                    r"something|time|a slot)|is there (?:any|a)|are you free|when can i come|frei\b|freie[nm]?\b"
                    r"|verfügbar|noch platz|noch was|was frei|zeit hätten|zeit haben|haben sie\b[^.?!]*\b(?:zeit|was"
                    r"|etwas)\b|wann kann ich",
    "hours": r"opening hours|(?<!anything )(?<!something )\bopen\b(?! slot)|\bclose[ds]?\b|closing|office hours"
             r"|business hours|your hours|what hours|\bhours (?:are|of|on)\b|\w+day hours|öffnungszeit\w*|geöffnet"
             r"|\boffen\b"
             r"|sprechzeit\w*|sprechstunde|(?:wann|ab wann|bis wann|sind sie)\b[^.?!]*\berreichbar|\baufhaben\b"
             r"|\bmachen sie\b[^.?!]*\bzu\b|\b(?:haben|sind) sie\b[^.?!]*\b(?:auf|zu)\s*[?.!]?\s*$",
    "address": r"address|where are you|located|location|directions|find you|parking|adresse|anschrift|parkpl\w*"
               r"|cross street|subway|which floor|what floor|get to you|welche[rn]? straße|wo genau|stockwerk|etage"
               r"|wo sind sie|wo finde|wo befinde|wegbeschreibung|wo ist die praxis|wie komme ich|parken",
    "price": r"how much(?! time)|price|\bcosts?\b|\bfees?\b|\bcharge\b|(?:take|accept|cover)\w* [^.?!]*insurance"
             r"|preis\w*|kostet|kosten|gebühr\w*|(?:nehmen|akzeptieren) sie [^.?!]*(?:versicher|krankenkasse|kasse)"
             r"|bezahlen|\bteuer\b|was nehmen sie|run me|ballpark"
             r"|was zahle",
    "human": r"\bhuman\b|real person|a person\b|\bstaff member|receptionist|operator"
             r"|speak (?:to|with)|talk (?:to|with)|put me through|transfer me|connect me"
             r"|mitarbeiter\w*|\bmenschen?\b|persönlich|durchstell\w*|\bverbinde\w*|mit der rezeption"
             r"|\bmit\b[^.?!]*\b(?:sprechen|reden)\b|\b(?:sprechen|reden)\s+mit\b|representative"
             r"|\b(?:frau|herrn?|dr\.?|doktor)\s[^?!]*\bsprechen\b|available to talk|\bkann ich\b[^?!]*\bsprechen\b",
    "goodbye": r"\bbye\b|goodbye|good bye|see you|tschüss?|auf wiederh\w*|auf wiederseh\w*|\bciao\b|schönen tag"
               r"|have a (?:nice|good) day",
    "done": r"that'?s all|that is all|that'?s everything|that'?s it\b|nothing else|no thanks|no thank you"
            r"|das war'?s|das wäre alles|nichts weiter|sonst nichts|nein danke|das war alles|mehr nicht"
            r"|mehr brauche ich nicht",
    "thanks": r"\bthanks?\b|thank you|danke\w*|vielen dank",
    "greeting": r"\b(?:hello|hi|hey|hallo|hallihallo|servus|moin|grüß gott|tach|guten (?:tag|morgen|abend)"
                r"|good (?:morning|afternoon|evening))\b",
}
_COMPILED = {intent: re.compile(pattern) for intent, pattern in INTENT_PATTERNS.items()}
# Asking whether a time works: only about availability when a day or a time is said with it.
# "Sind Sie heute Nachmittag noch da?" asks about hours; "Sind Sie noch da?" does not.
_THERE_THEN = re.compile(r"\b(?:sind sie|are you)\b[^.?!]*\b(?:da|there|in)\s*\?")
_HAVE_APPOINTMENT = re.compile(r"\b(?:ich hab|ich habe|hab ich|i have|i've got|i had|i got)\b[^.?!]*\b(?:termin|appointment"
                               r"|checkup|check-up|cleaning|kontrolle)")
_INSTEAD = re.compile(r"\b(?:stattdessen|statt|instead|lieber|rather|ginge|could we|can we|would)\b")
_WOULD_IT_WORK = re.compile(r"\bgeht (?:es|das|auch)\b|\bginge (?:es|das)\b|\bgeht\b[^.?!]*\?|\bpasst es\b"
                            r"|\bwould [^.?!]*\bwork\b|\b(?:anything|something)\b[^.!]*\?|\b(?:need|have|got|there)"
                            r"\b[^.?!]*\b(?:anything|something)\b|\bis [^.?!]*\b(?:possible"
                            r"|available|any better)\b|\b(?:brauche|bräuchte|hätte gern) (?:was|etwas)\b"
                            r"|\bhätten sie\b[^.?!]*\b(?:was|etwas)\b|\bgibt'?s\b[^.?!]*\btermine\b")
_WANTS = re.compile(r"\b(?:brauche|bräuchte|benötige|möchte|hätte gern|hätte gerne|will|wollte|würde gern"
                    r"|machen lassen|need|want|would like|i'd like|like to get|bitte|please|kommen|come in)\b")
# Asking about an appointment already made is no booking ("Hab ich morgen einen Termin?").
_LOOKUP = re.compile(r"\b(?:hab|habe) ich\b[^.?!]*\btermin|\bdo i have an appointment|\bis my appointment\b")

_YES = (r"yes|yeah|yep|yup|correct|right|sure|exactly|ok|okay|please do|sounds good|perfect|great|fine|go ahead"
        r"|that works|absolutely|you got it|mm-?hmm|uh-?huh|all good|ja|jawohl|jo|genau|richtig|stimmt|gerne?|passt"
        r"|korrekt|einverstanden|prima|super|perfekt|machen sie das|in ordnung|alles klar|sehr gut|gut")
_NO = (r"no|nope|nah|not|don't|dont|nein|nee|ne|nö|nicht|falsch(?! verbunden)|lieber|instead|rather|actually|doch"
       r"|na ja|naja")
_POLAR = re.compile(rf"\b(?:(?P<no>{_NO})|(?P<yes>{_YES}))\b")

# Words only one of the two languages has (the common ones callers use), for telling them apart.
_GERMAN = set("""ich sie ein eine einen einem mein meine meinen ist bin und oder nicht nein ja bitte danke
möchte möchten hätte gern gerne termin morgen heute übermorgen uhr um am nächste nächsten woche haben habe kann
können wann wie wo was für mit zum zur der die das den dem auch noch schon mal doch genau richtig wir ihr
verschieben absagen buchen hallo guten tag grüß tschüss wiederhören montag dienstag mittwoch donnerstag freitag
samstag sonntag halb viertel vormittags nachmittags abends vielen dank leider würde ginge geht kommen""".split())
_ENGLISH = set("""i you a an my is am and or not no yes please thanks thank would like want need appointment
tomorrow today the at on next week have has can could when how where what for with to of it that this i'd i'm
it's do does book cancel move reschedule hello hi bye goodbye monday tuesday wednesday thursday friday saturday
sunday half past quarter morning afternoon evening sorry great fine okay get there""".split())


def intents_of(said: str, *, has_when: bool = False) -> set[str]:
    """The intents said; `has_when`: a day or a time was said too ("Geht es am Montag?")."""
    lowered = " " + re.sub(r"\s+", " ", said.lower().replace("’", "'")) + " "
    found = {intent for intent, pattern in _COMPILED.items() if pattern.search(lowered)}
    if has_when and _WOULD_IT_WORK.search(lowered):
        found.add("availability")
    if has_when and _THERE_THEN.search(lowered):
        found.add("hours")
    if has_when and _HAVE_APPOINTMENT.search(lowered) and _INSTEAD.search(lowered):
        found.add("reschedule")  # "ich hab am Freitag einen Termin … ginge stattdessen Montag?"
    if "human" in found:
        found.discard("availability")  # "Is Dr. Patel available to talk?"
    if not has_when and re.search(r"\bis [^.?!]*\bfree\?|\bkostenlos|umsonst|\bfree of charge", lowered):
        found.discard("availability")  # "Is the consultation free?" asks for the price
        found.add("price")
    if "availability" in found and "hours" in found and re.search(r"\b(?:anything|something|was)\b", lowered):
        found.discard("hours")  # "anything open on the 7th"
    if "reschedule" in found or "cancel" in found:
        found.discard("book")
        found.discard("availability")
    if "availability" in found:
        found.discard("book")  # "Haben Sie einen Termin frei?" is answered by looking first
    if _LOOKUP.search(lowered):
        found.discard("book")
    return found


def wants(lowered: str) -> bool:
    """Does the caller ask for something ("ich brauche", "I'd like", "bitte")?"""
    return bool(_WANTS.search(lowered))


_OPENING_WORDS = 4
# Corrections count wherever they stand; other yes and no words only at the start of the answer,
# and the mild ones ("gern", "gut", "fine") only as its first word.
_CORRECTION = re.compile(r"\b(?:lieber|instead|rather|actually|stattdessen|eher)\b|\b(?:would|würde|wäre)\b[^.?!]*"
                         r"\b(?:better|besser)\b")
_MILD = {"gern", "gerne", "gut", "super", "prima", "fine", "great", "perfect", "right", "sure", "passt", "richtig",
         "nicht", "not", "don't", "dont"}
_LEADING_FILLERS = {"äh", "ähm", "also", "ach", "oh", "uh", "um", "well", "so", "hm", "hmm"}


def polarity(said: str) -> tuple[bool, bool]:
    """(yes, no) of what was said. Per sentence, the first yes-or-no word among its first words
    decides ("Nein, lieber Freitag" is no; "Ich würde gern …" in a long sentence is no yes), and
    a correction word anywhere is no; the caller's last sentence that says either wins ("Ja. Ach
    nein, doch lieber Freitag." is no)."""
    answer = (False, False)
    for sentence in re.split(r"[.!?;]+", said.lower().replace("’", "'")):
        found = _sentence_polarity(sentence)
        if any(found):
            answer = found
    return answer


def _sentence_polarity(lowered: str) -> tuple[bool, bool]:
    words = re.findall(r"[\w'-]+", lowered)
    while words and words[0] in _LEADING_FILLERS:
        words = words[1:]
    opening = " ".join(words[:_OPENING_WORDS])
    if re.match(r"(?:yeah|ja) (?:no|nein)\b", opening):
        return False, True  # "Yeah, no, that won't work"
    match = _POLAR.search(opening)
    if match is not None and (match.group(0) not in _MILD or opening.startswith(match.group(0))):
        no = match.group("no") is not None
        return not no, no
    return False, bool(_CORRECTION.search(lowered))


def language_of(lowered: str) -> str | None:
    """"de" or "en" when the words say so clearly (two more of one than of the other), else None."""
    words = re.findall(r"[a-zäöüß']+", lowered)
    german = sum(1 for w in words if w in _GERMAN or any(ch in w for ch in "äöüß"))
    english = sum(1 for w in words if w in _ENGLISH)
    if german >= english + 2:
        return "de"
    if english >= german + 2:
        return "en"
    return None

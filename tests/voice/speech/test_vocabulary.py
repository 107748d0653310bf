"""The offline recogniser's language, built from a company's own words."""

from pathlib import Path

from pocketsphinx import get_model_path

from voice.speech.vocabulary import build_vocabulary, caller_sentences, phones_from_ipa

DICTIONARY = Path(get_model_path("en-us/cmudict-en-us.dict"))


def test_the_language_holds_the_companys_services_and_the_words_callers_use_for_them():
    vocabulary = build_vocabulary(["Check-up", "Teeth cleaning", "Whitening consultation"],
                                  dictionary_path=DICTIONARY)
    # the services' own words, and words of the same meaning ("exam" for a check-up)
    assert {"checkup", "teeth", "cleaning", "whitening", "consultation", "exam"} <= vocabulary.words
    # days, times and numbers as the understanding's lexicon spells them
    assert {"tomorrow", "tuesday", "december", "ten", "thirty", "o'clock", "half", "past", "noon",
            "twenty", "first"} <= vocabulary.words
    # yes / no, what the receptionist asks about, goodbye
    assert {"yes", "no", "cancel", "reschedule", "hours", "address", "price", "goodbye"} <= vocabulary.words
    # a trigram model and a dictionary entry for every word
    assert "\\3-grams:" in vocabulary.arpa
    entries = {line.split()[0].split("(")[0] for line in vocabulary.dictionary.splitlines()}
    assert entries == set(vocabulary.words)


def test_the_names_asked_for_are_words_of_the_language_pronounced_by_espeak_where_cmu_lacks_them():
    vocabulary = build_vocabulary(["Check-up"], ["Ingrid Bergman", "Erika Mustermann"], dictionary_path=DICTIONARY)
    assert {"ingrid", "bergman", "erika", "mustermann"} <= vocabulary.words and vocabulary.missing == ()
    assert "mustermann M AH S T ER M AH N" in vocabulary.dictionary.splitlines()


def test_espeaks_ipa_maps_to_the_models_phones_or_to_none():
    assert phones_from_ipa("tʃˈɛkʌp") == "CH EH K AH P"
    assert phones_from_ipa("nˈuːjɛn") == "N UW Y EH N"
    assert phones_from_ipa("mˈʌ☃") is None


def test_the_same_words_build_the_same_language_under_the_same_key():
    first = build_vocabulary(["Check-up"], ["John"], dictionary_path=DICTIONARY)
    again = build_vocabulary(["Check-up"], ["John"], dictionary_path=DICTIONARY)
    other = build_vocabulary(["Filling"], ["John"], dictionary_path=DICTIONARY)
    assert (first.key, first.arpa) == (again.key, again.arpa)
    assert other.key != first.key and "filling" in other.words and "filling" not in first.words


def test_caller_sentences_ask_for_the_services_with_days_and_times():
    sentences = caller_sentences(["Teeth cleaning"])
    assert any("teeth cleaning" in s and "tomorrow" in s for s in sentences)
    assert any(s.startswith("my name is ") for s in sentences)
    assert "yes please" in sentences and "thank you goodbye" in sentences
    assert all(s == s.lower() and "  " not in s for s in sentences)


def test_a_company_without_services_still_gets_a_language_of_appointments():
    vocabulary = build_vocabulary([], dictionary_path=DICTIONARY)
    assert {"appointment", "book", "tomorrow"} <= vocabulary.words

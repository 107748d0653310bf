"""manage.py understanding_corpus: the share of the labelled caller corpus the understanding gets right."""

from django.core.management.base import BaseCommand

from appointments.understanding.evaluation import CORPORA, evaluate


class Command(BaseCommand):
    help = ("Runs the labelled corpus of caller utterances (appointments/understanding/corpus) through the "
            "understanding and prints the share understood per language; --misses lists what was missed.")

    def add_arguments(self, parser):
        parser.add_argument("--language", choices=["de", "en"], action="append",
                            help="Only this language (repeatable); default both.")
        parser.add_argument("--misses", action="store_true", help="List each utterance missed and how.")

    def handle(self, *args, language=None, misses=False, **options):
        below_floor = False
        for code, corpus in ((code, corpus) for code in language or ["de", "en"] for corpus in CORPORA):
            report = evaluate(code, corpus)
            self.stdout.write(f"{code} {corpus}: {report.understood}/{report.total} understood "
                              f"({report.share:.1%}); floor {report.floor:.1%}")
            below_floor |= report.share < report.floor
            for miss in report.misses if misses else ():
                detail = "; ".join(f"{key}: expected {want!r}, got {got!r}" for key, (want, got) in miss.wrong.items())
                self.stdout.write(f"  - {miss.say!r}: {detail}")
        if below_floor:
            raise SystemExit(1)

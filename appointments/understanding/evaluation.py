"""How much of the labelled corpus the understanding gets right (`manage.py understanding_corpus`).

Two corpora per language hold caller utterances, each with what must be understood; a label
left out must come out empty, so a guess counts as a miss. An utterance is understood when
every field agrees. `corpus/de.yaml` / `en.yaml` were written with the understanding;
`corpus/heldout_de.yaml` / `heldout_en.yaml` were written by a second author who did not read
the code, and measured as they came. The share of each is reported in the README and may only
grow: the test suite fails when it falls below the `floor` in the corpus file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from . import understand

CORPUS_DIR = Path(__file__).with_name("corpus")
TOPIC_INTENTS = {"reschedule", "cancel", "book", "availability", "hours", "address", "price", "human", "goodbye",
                 "done"}


@dataclass
class Miss:
    say: str
    wrong: dict          # field -> (expected, got)


@dataclass
class Report:
    language: str
    corpus: str
    total: int = 0
    misses: list[Miss] = field(default_factory=list)
    floor: float = 0.0

    @property
    def understood(self) -> int:
        return self.total - len(self.misses)

    @property
    def share(self) -> float:
        return self.understood / self.total if self.total else 0.0


CORPORA = ("written", "heldout")


def _path(language: str, corpus: str) -> Path:
    return CORPUS_DIR / (f"{language}.yaml" if corpus == "written" else f"{corpus}_{language}.yaml")


def load(language: str, corpus: str = "written") -> dict:
    corpus = yaml.safe_load(_path(language, corpus).read_text(encoding="utf-8"))
    # YAML 1.1 reads the keys yes / no as booleans.
    corpus["utterances"] = [{({True: "yes", False: "no"}.get(k, k) if isinstance(k, bool) else k): v
                             for k, v in item.items()} for item in corpus["utterances"]]
    return corpus


def _got(u, expected: dict) -> dict:
    intents = set(u.intents) & (TOPIC_INTENTS | ({"greeting", "thanks"} & set(expected.get("intents", []))))
    phone = u.phone if u.phone else ("invalid" if u.phone_said else None)
    period = u.period if u.period is not None and u.period.name == "range" else None
    return {
        "intents": sorted(intents), "yes": u.yes, "no": u.no, "dates": list(u.dates), "time": u.time,
        "daypart": u.daypart, "name": u.name, "phone": phone, "service": u.service if u.service_known else None,
        "choices": sorted(u.service_choices), "unclear": bool(u.unclear), "shift": u.shift_minutes,
        "range": [period.start.strftime("%H:%M"), period.end.strftime("%H:%M")] if period else None,
    }


def _wanted(item: dict) -> dict:
    return {
        "intents": sorted(item.get("intents", [])), "yes": item.get("yes", False), "no": item.get("no", False),
        "dates": [str(d) for d in item.get("dates", [])], "time": item.get("time"), "daypart": item.get("daypart"),
        "name": item.get("name"), "phone": item.get("phone"), "service": item.get("service"),
        "choices": sorted(item.get("choices", [])), "unclear": item.get("unclear", False),
        "shift": item.get("shift"), "range": item.get("range"),
    }


def evaluate(language: str, corpus_name: str = "written") -> Report:
    corpus = load(language, corpus_name)
    today = corpus["today"] if isinstance(corpus["today"], date) else date.fromisoformat(corpus["today"])
    report = Report(language=language, corpus=corpus_name, floor=float(corpus.get("floor", 0.0)))
    for item in corpus["utterances"]:
        u = understand(item["say"], corpus["services"], region=corpus["region"], today=today,
                       language=language, expecting=item.get("expecting"))
        wanted, got = _wanted(item), _got(u, item)
        wrong = {key: (wanted[key], got[key]) for key in wanted if wanted[key] != got[key]}
        report.total += 1
        if wrong:
            report.misses.append(Miss(say=item["say"], wrong=wrong))
    return report

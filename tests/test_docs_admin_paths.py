"""Every admin path the README and docs/*.md name ("Admin → Companies → the company → Practice")
can be clicked as written, label by label, by a superuser. A path is any "A → B → C" whose first
label is "Admin" or what the admin calls an app or a model; "the …" (or "a …") opens a row of
the list it is on."""

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin

from audit.models import Delivery
from retell_config.models import Agent
from tests.factories import make_company, make_for, make_user
from tests.html import page_labels

ROOT = Path(settings.BASE_DIR)
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENDS = re.compile(r"[,;:()\[\]|]|\.(?:\s|$)")
START = "Admin"


def _prose(text: str) -> str:
    """The document without code blocks and code spans, each paragraph on one line."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return "\n\n".join(" ".join(block.split()) for block in re.split(r"\n\s*\n", text))


def _norm(label: str) -> str:
    return " ".join(label.replace("*", "").replace("_", " ").split()).strip(" +:").lower()


def arrow_chains(text: str) -> list[list[str]]:
    """Every "A → B → C" in the prose, as its segments; the first is the text before the first
    arrow back to the last punctuation (its last words are the path's first label)."""
    chains = []
    for paragraph in _prose(text).split("\n\n"):
        for piece in ENDS.split(paragraph):
            if piece and "→" in piece:
                chains.append([segment.strip() for segment in piece.split("→")])
    return chains


def _admin_words() -> set[str]:
    words = {START.lower()}
    for config in apps.get_app_configs():
        words |= {config.label.lower(), _norm(str(config.verbose_name))}
    for model in admin.site._registry:
        words |= {_norm(str(model._meta.verbose_name)), _norm(str(model._meta.verbose_name_plural))}
    return words


def admin_paths() -> list[tuple[str, list[str]]]:
    """[(document, labels)]: every chain whose first label (the last words before its first
    arrow) is "Admin" or what the admin calls an app or a model, from that label on."""
    words = _admin_words()
    paths = []
    for document in DOCUMENTS:
        for chain in arrow_chains(document.read_text()):
            head = chain[0].split()
            first = next((" ".join(head[n:]) for n in range(len(head)) if _norm(" ".join(head[n:])) in words), None)
            if first is not None:
                paths.append((document.name, [first.replace("*", ""), *chain[1:]]))
    return paths


@pytest.fixture
def walker(client, db):
    client.force_login(make_user("docs-root", is_superuser=True))
    company = make_company("Alpha Praxis", slug="alpha")
    Agent.objects.create(company=company, agent_id="agent_docs", name="Docs Agent")
    for model in (Delivery,):
        row = make_for(model, company)
        row.status = "dead"
        row.save()
    return client


# Where a path may start: the admin home, and the Retell Webhook Configuration page (its cards
# and buttons, which the README describes under that page).
START_PAGES = ["/admin/", "/admin/retell-webhook-configuration/"]


def click_through(client, labels: list[str]) -> str | None:
    """Follow the labels from the first start page that shows the first one ("Admin" is the
    home itself); None when every one was found, else what failed."""
    problems = [_click_from(client, url, labels[1:] if labels[0] == START else labels) for url in START_PAGES]
    return None if None in problems else problems[0]


def _click_from(client, url: str, labels: list[str]) -> str | None:
    html = client.get(url).content.decode()
    for label in labels:
        found, first_result = page_labels(html)
        if label.startswith("the ") or label.startswith("a "):
            if first_result is None:
                return f"{label!r}: no row to open at {url}"
            url = urljoin(url, first_result)
        else:
            # The label as written first (a card's "Custom Functions" before the sidebar's "Custom functions").
            matches = [href for text, href in sorted(found, key=lambda f: f[0].strip(" +:") != label.strip("* "))
                       if _norm(text) == _norm(label)]
            if not matches:
                shown = sorted({_norm(text) for text, _ in found if text.strip()})
                return f"{label!r} is not on {url} (it shows: {', '.join(shown)})"
            href = matches[0] if matches[0] and not matches[0].startswith("#") else None
            if href is None:  # a heading, a field or a button: the next label is on this page too
                continue
            url = urljoin(url, href)
        response = client.get(url)
        if response.status_code != 200:
            return f"{label!r} leads to {url}, which answers {response.status_code}"
        html = response.content.decode()
    return None


@pytest.mark.django_db
def test_every_admin_path_in_the_docs_can_be_clicked_as_written(walker):
    paths = admin_paths()
    failures = [f"{document}: {' → '.join(labels)}: {problem}" for document, labels in paths
                for problem in [click_through(walker, labels)] if problem]

    assert paths and failures == [], "\n".join(failures)

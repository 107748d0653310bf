"""Where the project's templates live (the design's top-level templates/), and the static
files every admin page links: the favicon and VoiceDesk's admin CSS."""

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.template.loader import get_template

from tests.factories import make_company, make_user

TOP_LEVEL = Path(settings.BASE_DIR) / "templates"


def test_the_project_wide_admin_overrides_load_from_the_top_level_templates_folder():
    for name in ("admin/voicedesk_index.html", "admin/base_site.html"):
        assert Path(get_template(name).origin.name).parent.parent == TOP_LEVEL, name


def test_apps_keep_only_their_own_admin_templates():
    """An app's templates/admin/ holds only admin/<its label>/…; overrides for the whole admin
    are the project's (templates/admin/)."""
    strays = []
    for config in apps.get_app_configs():
        folder = Path(config.path) / "templates" / "admin"
        if not folder.is_dir() or Path(config.path).parent != Path(settings.BASE_DIR):  # our apps only
            continue
        strays += [str(p.relative_to(settings.BASE_DIR)) for p in folder.rglob("*.html")
                   if p.relative_to(folder).parts[0] != config.label]
    assert strays == []


@pytest.fixture
def superuser_client(client, db):
    client.force_login(make_user("root", is_superuser=True))
    return client


@pytest.mark.django_db
def test_every_admin_page_links_the_favicon_and_it_is_served(settings, superuser_client):
    settings.WHITENOISE_USE_FINDERS = True  # as after collectstatic; read when the client's handler starts
    make_company("Alpha Praxis", slug="alpha")  # the configuration page shows a company

    pages = ["/admin/", "/admin/audit/webhookreceipt/", "/admin/retell-webhook-configuration/",
             "/admin/tenants/company/add/"]
    links = {path: re.findall(r'<link rel="icon" href="([^"]+)"', superuser_client.get(path).content.decode())
             for path in pages}
    icon = links["/admin/"][0]
    served = superuser_client.get(icon)
    root = superuser_client.get("/favicon.ico")

    assert all(found and found[0] == icon for found in links.values()), links
    assert served.status_code == 200 and served["Content-Type"].startswith("image/")
    assert b"".join(served.streaming_content if served.streaming else [served.content])[:4] == b"\x00\x00\x01\x00"
    assert root.status_code == 302 and root["Location"] == icon


@pytest.mark.django_db
def test_the_admin_css_is_linked_and_served(settings, superuser_client):
    settings.WHITENOISE_USE_FINDERS = True

    html = superuser_client.get("/admin/audit/webhookreceipt/").content.decode()
    href = re.search(r'<link rel="stylesheet" href="([^"]*voicedesk/admin\.css)"', html).group(1)

    assert superuser_client.get(href).status_code == 200

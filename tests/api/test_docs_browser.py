"""/api/docs/ in a real browser (headless chromium): Swagger UI draws every resource of the
schema, and every request the page makes goes to this server (its assets come from the
drf-spectacular-sidecar package, not a CDN).

Skipped only where no chromium is installed and CI is not "true": in CI it must run.
"""

import os
from urllib.parse import urlsplit

import pytest

from tests.retell_config.test_browser import HAVE_CHROMIUM, browser_page  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and os.environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]


def test_swagger_ui_draws_the_api_from_this_server_alone(transactional_db, live_server, browser_page):  # noqa: F811
    page = browser_page
    hosts = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

    page.goto(f"{live_server.url}/api/docs/")
    page.get_by_text("Book an appointment").first.wait_for()

    for path in ("/api/v1/appointments/", "/api/v1/agents/{agent_id}/", "/api/v1/deliveries/{id}/retry/"):
        assert page.locator(".opblock-summary-path", has_text=path).count() >= 1, path
    assert page.get_by_text("VoiceDesk API").first.is_visible()
    assert hosts == {urlsplit(live_server.url).netloc}

"""The admin's lists in a real browser (headless chromium) at a common laptop width: every
column a person reads, Status included, is on screen without scrolling sideways.

Skipped only where no chromium is installed and CI is not "true": in CI it must run.
"""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from appointments.models import Appointment, Service
from audit.models import WebhookReceipt
from tests.factories import make_company, make_member
from tests.retell_config.test_browser import HAVE_CHROMIUM, PASSWORD

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM and __import__("os").environ.get("CI") != "true",
                       reason="no chromium here (apt-get install chromium); CI installs it and runs this"),
]

WIDTH = 1400


@pytest.fixture
def busy_company(transactional_db):
    """A company with the long values real rows have: a long name, Retell's call ids, IPv6 clients."""
    company = make_company("Zahnarztpraxis Dr. Mustermann-Schulze & Kollegen", slug="praxis-browser")
    make_member(company, "owner", username="list-owner")
    for n in range(3):
        WebhookReceipt.objects.create(
            provider="retell", company=company, endpoint="/api/mcp/retell/custom-function", body=b"{}",
            status="rejected", error_code="signature_invalid", kind="function",
            event_type="collect_appointment_information", call_id=f"call_5f8a2c9d1e7b4a6f8c3d2e1f0a9b8c7{n}",
            remote_addr="2001:db8:85a3::8a2e:370:7334")
    service = Service.objects.create(company=company, name="Professionelle Zahnreinigung", duration_minutes=60)
    start = datetime(2030, 3, 4, 9, 0, tzinfo=dt_timezone.utc)
    for n in range(3):
        begin = start + timedelta(hours=2 * n)
        Appointment.objects.create(company=company, customer_name="Maximilian Alexander von Mustermann-Schulze",
                                   phone="+4915123456789", service=service, start=begin,
                                   end=begin + timedelta(hours=1), blocked_until=begin + timedelta(hours=1),
                                   status="confirmed", call_id=f"call_5f8a2c9d1e7b4a6f8c3d2e1f0a9b8c7{n}")
    return company


def _status_column_visible(page, live_server, path: str) -> dict:
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector("#result_list")
    return page.evaluate("""() => {
        const th = document.querySelector('#result_list thead th.column-status');
        const box = th.getBoundingClientRect();
        const results = document.querySelector('#changelist .results') || document.querySelector('#result_list');
        const clip = results.getBoundingClientRect();
        return {right: box.right, clip_right: Math.min(clip.right, window.innerWidth),
                scrolls: results.scrollWidth > results.clientWidth + 1};
    }""")


@pytest.mark.parametrize("path", ["/admin/audit/webhookreceipt/", "/admin/appointments/appointment/"])
def test_the_status_column_is_on_screen_at_1400_px(busy_company, live_server, browser_page, path):
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next={path}")
    page.fill("#id_username", "list-owner")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    seen = _status_column_visible(page, live_server, path)

    assert seen["right"] <= seen["clip_right"] and not seen["scrolls"], seen

"""Opening hours in the company's admin page: a weekday grid of open and close times with
breaks between ranges, in the company's time zone, checked as it is saved, with the company's
closures beside it. The stored JSON keeps its shape ({"mon": [["08:00", "12:00"], …]})."""

from datetime import date

import pytest
from django.urls import reverse

from appointments.models import Closure
from tenants.models import Company
from tests.html import table_rows

HOURS = {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": [["09:00", "13:00"]]}


def change_url(company: Company) -> str:
    return reverse("admin:tenants_company_change", args=[company.pk])


def company_form(company: Company, **grid) -> dict:
    """The change form as the page posts it: the grid's inputs (name "opening_hours__<day>__<n>__open|close")."""
    data = {"name": company.name, "slug": company.slug, "is_active": "on", "timezone": company.timezone,
            "language": company.language, "phone": company.phone, "address": company.address,
            "twilio_account_sid": "", "backend_url": ""}
    data.update({f"opening_hours__{key}": value for key, value in grid.items()})
    return data


@pytest.mark.django_db
def test_the_page_shows_a_weekday_grid_with_breaks_in_the_companys_time_zone(owner_client, company_a):
    company_a.opening_hours = HOURS
    company_a.save()

    html = owner_client.get(change_url(company_a)).content.decode()
    rows = {row["cells"][0]: row["cells"][1:] for row in table_rows(html, "voicedesk-opening-hours")
            if row["cells"] and row["cells"][0] in ("Monday", "Tuesday", "Saturday")}

    assert 'name="opening_hours__mon__0__open" value="08:00"' in html
    assert 'name="opening_hours__mon__1__close" value="18:00"' in html
    assert 'type="time"' in html and "Europe/Berlin" in html
    assert rows["Monday"][-1] == "break 12:00–13:00"
    assert rows["Tuesday"][-1] == "closed"
    assert rows["Saturday"][-1] == ""


@pytest.mark.django_db
def test_saving_the_grid_stores_the_same_json_as_before(owner_client, company_a):
    response = owner_client.post(change_url(company_a), company_form(
        company_a, mon__0__open="13:00", mon__0__close="18:00", mon__1__open="08:00", mon__1__close="12:00",
        mon__2__open="", mon__2__close="", sat__0__open="09:00", sat__0__close="13:00"))

    assert response.status_code == 302
    assert Company.objects.get(pk=company_a.pk).opening_hours == HOURS


@pytest.mark.django_db
@pytest.mark.parametrize("grid, message", [
    ({"mon__0__open": "08:00", "mon__0__close": "12:00", "mon__1__open": "11:30", "mon__1__close": "14:00"},
     "Monday: 08:00–12:00 and 11:30–14:00 overlap."),
    ({"tue__0__open": "18:00", "tue__0__close": "08:00"}, "Tuesday: 18:00–08:00 closes before it opens."),
    ({"wed__0__open": "8 Uhr", "wed__0__close": "12:00"}, "Wednesday: 8 Uhr is not a time of day (HH:MM)."),
    ({"thu__0__open": "24:00", "thu__0__close": "25:00"}, "Thursday: 24:00 is not a time of day (HH:MM)."),
    ({"fri__0__open": "08:00", "fri__0__close": ""}, "Friday: 08:00– needs both an opening and a closing time."),
])
def test_a_grid_that_makes_no_sense_is_refused_naming_the_day(owner_client, company_a, grid, message):
    company_a.opening_hours = HOURS
    company_a.save()

    response = owner_client.post(change_url(company_a), company_form(company_a, **grid))

    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors["opening_hours"]
    assert Company.objects.get(pk=company_a.pk).opening_hours == HOURS


@pytest.mark.django_db
def test_the_companys_closures_are_listed_beside_the_hours_with_a_way_to_add_one(owner_client, company_a,
                                                                                 company_b):
    Closure.objects.create(company=company_a, first_day=date(2030, 12, 24), last_day=date(2030, 12, 26),
                           reason="Weihnachten")
    Closure.objects.create(company=company_b, first_day=date(2030, 8, 1), last_day=date(2030, 8, 2),
                           reason="Beta's holiday")

    html = owner_client.get(change_url(company_a)).content.decode()

    assert "2030-12-24 – 2030-12-26 Weihnachten" in html and "Beta's holiday" not in html
    assert f'href="{reverse("admin:appointments_closure_add")}?company={company_a.pk}"' in html

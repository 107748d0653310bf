"""A Berlin practice (German) and a New York practice (English), open Monday to Friday 8-18."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from appointments.models import Service
from tests.factories import make_company

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_8_TO_18 = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def new_york(*args) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


@pytest.fixture
def praxis(db):
    return make_company("Praxis Sonnenschein", slug="praxis", timezone="Europe/Berlin", language="de",
                        phone="+493012345678", opening_hours=WEEKDAYS_8_TO_18)


@pytest.fixture
def dental(db):
    return make_company("Bright Smile", slug="bright", timezone="America/New_York", language="en",
                        phone="+12125550134", opening_hours={**WEEKDAYS_8_TO_18, "sat": [["09:00", "13:00"]]})


@pytest.fixture
def kontrolle(praxis):
    return Service.objects.create(company=praxis, name="Kontrolle", duration_minutes=30)


@pytest.fixture
def cleaning(dental):
    return Service.objects.create(company=dental, name="Cleaning", duration_minutes=45, buffer_minutes=15)

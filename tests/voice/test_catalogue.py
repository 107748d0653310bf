"""The services catalogue the dialog engines read, and prices said aloud."""

from decimal import Decimal

import pytest

from voice.dialog.catalogue import company_services, spoken_price


@pytest.mark.parametrize("amount, language, timezone, said", [
    (Decimal("80.00"), "en", "America/New_York", "80 dollars"),
    (Decimal("79.50"), "de", "Europe/Berlin", "79,50 Euro"),
    (120, "en", "Europe/Berlin", "120 euros"),
    (45, "de", "Europe/Zurich", "45 Franken"),
    (None, "en", "Europe/Berlin", ""),
])
def test_prices_are_said_in_the_companys_currency_and_language(amount, language, timezone, said):
    assert spoken_price(amount, language=language, timezone=timezone) == said


def test_without_the_appointments_service_model_the_catalogue_is_empty(db):
    assert company_services(company_id=1, language="en", timezone="Europe/Berlin") == []

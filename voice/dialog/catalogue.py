"""The company's services as the dialog engines see them: the one place that reads them.

The services come from the appointments app's selector. Runs in a thread
(database_sync_to_async), never on the event loop.
"""

from __future__ import annotations

from decimal import Decimal

from .base import ServiceInfo

CURRENCY_WORDS = {"en": {"EUR": "euros", "USD": "dollars", "GBP": "pounds", "CHF": "Swiss francs"},
                  "de": {"EUR": "Euro", "USD": "Dollar", "GBP": "Pfund", "CHF": "Franken"}}
CURRENCY_OF_TIMEZONE = {"America/": "USD", "Europe/London": "GBP", "Europe/Zurich": "CHF"}


def _currency(timezone: str) -> str:
    return next((code for prefix, code in CURRENCY_OF_TIMEZONE.items() if timezone.startswith(prefix)), "EUR")


def spoken_price(amount, *, language: str, timezone: str) -> str:
    """80 -> "80 euros"; 79.50 -> "79.50 euros" (said, not read)."""
    if amount in (None, ""):
        return ""
    value = Decimal(str(amount))
    text = f"{value:.0f}" if value == value.to_integral_value() else f"{value:.2f}"
    if language == "de":
        text = text.replace(".", ",")
    return f"{text} {CURRENCY_WORDS[language][_currency(timezone)]}"


def company_services(*, company_id: int, language: str, timezone: str) -> list[ServiceInfo]:
    """The company's active services with their prices, as the engines speak them."""
    from appointments.selectors import active_services
    from tenants.models import Company

    return [ServiceInfo(name=service.name,
                        price=spoken_price(service.price, language=language, timezone=timezone),
                        duration_minutes=service.duration_minutes)
            for service in active_services(company=Company(pk=company_id))]

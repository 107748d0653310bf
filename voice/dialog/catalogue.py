"""The company's services as the dialog engines see them: the one place that reads them.

The Service model belongs to the appointments app (issue 4: name, duration, buffer,
price, active). Until it is on this branch the catalogue is empty and the
receptionist takes the service as the caller says it, and prices from what the tool
results say. Runs in a thread (database_sync_to_async), never on the event loop.
"""

from __future__ import annotations

from decimal import Decimal

from django.apps import apps

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
    """The company's active services with their prices, or [] while there is no Service model."""
    try:
        model = apps.get_model("appointments", "Service")
    except LookupError:
        return []
    fields = {f.name for f in model._meta.get_fields()}
    rows = model._base_manager.filter(company_id=company_id)
    for flag in ("active", "is_active"):
        if flag in fields:
            rows = rows.filter(**{flag: True})
    services = []
    for row in rows.order_by("name"):
        duration = getattr(row, "duration_minutes", None) or getattr(row, "duration", None)
        if hasattr(duration, "total_seconds"):
            duration = int(duration.total_seconds() // 60)
        services.append(ServiceInfo(
            name=row.name,
            price=spoken_price(getattr(row, "price", None), language=language, timezone=timezone),
            duration_minutes=duration if isinstance(duration, int) else None))
    return services

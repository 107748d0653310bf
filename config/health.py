"""GET /health: the state of the database, the cache and the Celery broker; the delivery backlog
and the webhook receipts that failed processing."""

import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


def _scheme(url: str) -> str:
    # Only the scheme is reported: a URL can carry a password.
    return urlsplit(url).scheme or url


def cache_backend() -> str:
    backend = settings.CACHES["default"]["BACKEND"]
    return "redis" if "redis" in backend.lower() else backend.rsplit(".", 2)[-2]


def probe_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def probe_cache() -> None:
    key = "health:probe"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("value written to the cache did not read back")


def probe_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


# name -> (what it runs on, how to probe it)
CHECKS = {
    "database": (lambda: connection.vendor, probe_database),
    "cache": (cache_backend, probe_cache),
    "broker": (lambda: _scheme(settings.CELERY_BROKER_URL), probe_broker),
}


def run_checks() -> dict:
    results = {}
    for name, (backend, probe) in CHECKS.items():
        started = time.perf_counter()
        result = {"backend": backend()}
        try:
            probe()
            result["ok"] = True
        except Exception as exc:  # each check reports its own failure; the others still run
            result.update(ok=False, error=type(exc).__name__)
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        results[name] = result
    return results


def delivery_backlog() -> dict:
    """Deliveries waiting to be sent and dead letters: reported, never a reason for 503 (the
    backend being behind or a message needing a person is not an outage of this server)."""
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from audit.models import Delivery

    waiting = Q(status__in=[Delivery.Status.PENDING, Delivery.Status.IN_FLIGHT, Delivery.Status.FAILED])
    totals = Delivery.objects.aggregate(pending=Count("pk", filter=waiting),
                                        oldest=Min("created_at", filter=waiting),
                                        dead=Count("pk", filter=Q(status=Delivery.Status.DEAD)))
    oldest = totals["oldest"]
    return {"pending": totals["pending"], "dead": totals["dead"],
            "oldest_pending_age_s": round((timezone.now() - oldest).total_seconds()) if oldest else None}


def receipt_failures() -> dict:
    """Webhook receipts whose processing failed: `failed` (retrying or given up), `given_up` (no
    further try: they need a person) and the age in seconds of the oldest failed one's request.
    Reported, never a reason for 503: the rest of intake works."""
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from audit.models import WebhookReceipt

    failed = Q(status=WebhookReceipt.Status.FAILED)
    totals = WebhookReceipt.objects.aggregate(
        failed=Count("pk", filter=failed), given_up=Count("pk", filter=failed & Q(next_attempt_at=None)),
        oldest=Min("received_at", filter=failed))
    oldest = totals["oldest"]
    return {"failed": totals["failed"], "given_up": totals["given_up"],
            "oldest_failed_age_s": round((timezone.now() - oldest).total_seconds()) if oldest else None}


@require_GET
def health(request):
    checks = run_checks()
    down = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if not down else "down", "down": down, "checks": checks}
    if checks["database"]["ok"]:
        body["deliveries"] = delivery_backlog()
        body["receipts"] = receipt_failures()
    if down:
        body["message"] = "Unreachable: " + ", ".join(f"{n} ({checks[n]['backend']})" for n in down)
    return JsonResponse(body, status=503 if down else 200)

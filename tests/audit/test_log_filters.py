import io
import logging

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.log_filters import SecretPathFilter, configured_filters, redact_secret_paths
from tests.factories import make_member

TOKEN = "Xy3_kq9-ZZ0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"


def test_an_agent_token_in_a_socket_path_is_masked_and_the_call_id_kept():
    assert redact_secret_paths(f'127.0.0.1:5555 - "WebSocket /retell-llm/{TOKEN}/call_9" [accepted]') == \
        '127.0.0.1:5555 - "WebSocket /retell-llm/[agent-token]/call_9" [accepted]'


def test_the_plain_call_id_path_and_other_paths_are_left_alone():
    assert redact_secret_paths("/retell-llm/call_abcdefghijklmnopqrs") == "/retell-llm/call_abcdefghijklmnopqrs"
    assert redact_secret_paths("/admin/retell_config/agent/3/") == "/admin/retell_config/agent/3/"


def test_the_filter_masks_a_record_built_from_arguments():
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5555", f"/retell-llm/{TOKEN}/call_9"), None)

    assert SecretPathFilter().filter(record)
    assert TOKEN not in record.getMessage()
    assert "/retell-llm/[agent-token]/call_9" in record.getMessage()


# --- through the configured console handler: messages, exception text and tracebacks -------------
def configured_handler(stream: io.StringIO) -> logging.Handler:
    """A handler with the filters and format of settings.LOGGING's console handler."""
    config = settings.LOGGING
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(config["formatters"]["plain"]["format"]))
    for log_filter in configured_filters():
        handler.addFilter(log_filter)
    return handler


@pytest.fixture
def logged():
    stream = io.StringIO()
    handler = configured_handler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("path", [
    f"retell-llm/{TOKEN}//call_abc",  # the configured URL ended with a slash (channels strips the first /)
    f"/retell-llm/{TOKEN}./call_abc",  # ... with a dot
    f"/retell-llm/{TOKEN}/extra/call_abc",  # ... with an extra segment
    f"wss://voicedesk.example.com/retell-llm/{TOKEN}",  # the URL given to Retell, before the call id
])
def test_a_socket_token_in_a_no_route_traceback_is_masked_in_the_message_and_the_traceback(logged, path):
    try:
        raise ValueError("No route found for path %r." % path)
    except ValueError as exc:
        logging.getLogger("daphne.server").error("Exception inside application: %s", exc, exc_info=True)

    text = logged.getvalue()
    assert "Traceback" in text and "No route found" in text
    assert TOKEN not in text
    assert text.count("[agent-token]") == 2  # in the message and in the traceback's last line


def test_a_key_in_an_encoding_error_is_masked_where_a_worker_logs_its_repr(logged):
    key = "backend–key-0123456789abcdef"
    try:
        f"Bearer {key}".encode("latin-1")
    except UnicodeEncodeError as exc:
        # Celery's own line for a task that raised, and the traceback under it.
        logging.getLogger("celery.app.trace").error("Task %s raised unexpected: %r", "audit.delivery_send", exc,
                                                    exc_info=True)

    text = logged.getvalue()
    assert "UnicodeEncodeError" in text
    assert "0123456789abcdef" not in text


@pytest.mark.parametrize("line", [
    "Authorization: Bearer sk-live-0123456789abcdef",
    "{'Authorization': 'Bearer sk-live-0123456789abcdef', 'Idempotency-Key': 'k'}",
    "headers={'xi-api-key': 'sk-live-0123456789abcdef'}",
    "Authorization: Basic sk-live-0123456789abcdef",
])
def test_a_credential_header_value_never_reaches_a_log_line(logged, line):
    logging.getLogger("requests").warning("Sent %s", line)

    assert "0123456789abcdef" not in logged.getvalue()
    assert "[redacted]" in logged.getvalue()


@pytest.mark.django_db
def test_a_refused_admin_request_logs_one_line_saying_who_what_and_where_without_a_traceback(client, company_a,
                                                                                             logged):
    viewer = make_member(company_a, "viewer")
    client.force_login(viewer)

    response = client.get(reverse("admin:tenants_company_add"))

    assert response.status_code == 403
    [line] = logged.getvalue().splitlines()
    assert "WARNING django.request" in line
    assert "403" in line and "GET /admin/tenants/company/add/" in line and viewer.username in line
    assert "Traceback" not in logged.getvalue()


@pytest.mark.django_db
def test_a_refusal_of_a_visitor_who_is_not_logged_in_names_them_anonymous(logged):
    from django.http import HttpRequest

    request = HttpRequest()
    request.method, request.path = "POST", "/api/gateway"
    try:
        raise PermissionDenied("Not for you.")
    except PermissionDenied as exc:
        logging.getLogger("django.request").warning("Forbidden (Permission denied): %s", request.path,
                                                    extra={"status_code": 403, "request": request}, exc_info=exc)

    [line] = logged.getvalue().splitlines()
    assert "POST /api/gateway" in line and "anonymous" in line and "Not for you." in line


def test_the_celery_workers_own_handlers_get_the_same_filters():
    from celery import signals

    import config.celery  # noqa: F401  (connects the worker's logging hook)

    stream = io.StringIO()
    worker_logger = logging.getLogger("celery.test.worker")
    worker_logger.propagate = False
    worker_logger.addHandler(logging.StreamHandler(stream))  # what the worker installs instead of ours
    try:
        signals.after_setup_task_logger.send(sender=None, logger=worker_logger, loglevel=logging.INFO, logfile=None,
                                             format="", colorize=False)
        worker_logger.error("Task raised unexpected: %r", UnicodeEncodeError(
            "latin-1", "Bearer backend–key-0123456789abcdef", 14, 15, "ordinal not in range(256)"))
    finally:
        worker_logger.handlers.clear()

    assert "UnicodeEncodeError" in stream.getvalue() and "0123456789abcdef" not in stream.getvalue()

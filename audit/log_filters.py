"""Log filters: the request id on every line, no credential in any line, one line per refusal.

They sit on the console handler (settings.LOGGING) and on the handlers the Celery worker
installs (config/celery.py), so they see every record, whichever logger made it.
"""

import logging
import re

from .middleware import current_request_id

# /retell-llm/<agent socket token>/<call_id>: the token names the agent, so it is a secret.
# Masked wherever something follows it (/, //, a dot, another segment, in a path with or
# without its leading slash, as channels' "No route found" has it), and at the end of the
# text when it is as long as a socket token (43 characters; Retell's call ids are 32), so the
# plain /retell-llm/<call_id> path keeps its call id.
_AGENT_TOKEN_IN_PATH = re.compile(r"(retell-llm/)(?:[A-Za-z0-9_-]{16,}(?=[^A-Za-z0-9_\-\s'\"])|[A-Za-z0-9_-]{40,})")
MASK = r"\1[agent-token]"

# Header values that authenticate: "Authorization: Bearer x", "'Authorization': 'Bearer x'",
# "xi-api-key: x", "Cookie: a=1; b=2" (the value: a quoted string, else up to the line's end).
_CREDENTIAL_HEADER = re.compile(
    r"""((?:proxy-)?(?:authorization|x-api-key|xi-api-key|api-key|cookie)['"]?\s*[:=]\s*)"""
    r"""('[^']*'|"[^"]*"|[^\r\n,}]+)""", re.IGNORECASE)
# A bare "Bearer x" (a header value inside an exception's repr); "Basic" only before something
# that reads as base64 (a digit, +, / or =, or a lower-case letter followed by a capital), so
# "Basic information" stays.
_SCHEME_AND_CREDENTIAL = re.compile(
    r"\b([Bb][Ee][Aa][Rr][Ee][Rr]|Basic(?=\s+[^\s'\",}]*(?:[0-9+/=]|[a-z][A-Z])))\s+[^\s'\",}]+")
REDACTED = "[redacted]"


def _quoted_like(original: str, replacement: str) -> str:
    quote = original[0] if original[:1] in ("'", '"') else ""
    return f"{quote}{replacement}{quote}"


def redact_secret_paths(text: str) -> str:
    """`text` with every agent socket token in a /retell-llm/ path replaced by [agent-token]."""
    return _AGENT_TOKEN_IN_PATH.sub(MASK, text)


def redact_log_text(text: str) -> str:
    """`text` without socket tokens and without the values of credential-bearing headers."""
    text = redact_secret_paths(text)
    text = _CREDENTIAL_HEADER.sub(lambda m: m.group(1) + _quoted_like(m.group(2), REDACTED), text)
    return _SCHEME_AND_CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


_TRACEBACKS = logging.Formatter()


class SecretPathFilter(logging.Filter):
    """Masks socket tokens and credential header values in the message, the exception text and
    the formatted traceback (the record's exc_text, which formatters print as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_log_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info)
        return True


def _printable(text: str) -> str:
    # As Django logs a path: escaped, so a line break in it cannot forge a line of its own.
    return text.encode("unicode_escape").decode("ascii")


def _who(request) -> str:
    user = getattr(request, "user", None)
    try:
        if user is not None and user.is_authenticated:
            return f"user {_printable(user.get_username())} (#{user.pk})"
    except Exception:  # a broken session must not cost the log line
        return "an unknown user"
    return "anonymous"


class RefusalLogFilter(logging.Filter):
    """A request refused with a 4xx (403 above all: one per forbidden admin page) is one line
    saying who, what and where, without the traceback Django attaches to it:

        GET /admin/tenants/company/add/ refused 403 for user ana (#7): Forbidden (Permission denied)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if (not isinstance(status, int) or not 400 <= status < 500 or request is None
                or getattr(record, "refusal_line", False)):  # a record passes every handler's filters
            return True
        what = record.getMessage().split(":", 1)[0]
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and str(exc):
            what += f" ({type(exc).__name__}: {_printable(str(exc))})"
        where = f"{getattr(request, 'method', '?')} {_printable(getattr(request, 'path', '?'))}"
        record.msg, record.args = "%s refused %d for %s: %s", (where, status, _who(request), what)
        record.exc_info, record.exc_text, record.refusal_line = None, None, True
        return True


def configured_filters() -> list[logging.Filter]:
    """New instances of the filters settings.LOGGING puts on its console handler, in order."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    config = settings.LOGGING
    filters = []
    for name in config["handlers"]["console"]["filters"]:
        spec = dict(config["filters"][name])
        filters.append(import_string(spec.pop("()"))(**spec))
    return filters


def install_on_handlers(logger: logging.Logger) -> None:
    """Give `logger`'s handlers the console handler's filters (once each): the Celery worker
    replaces the configured handlers with its own."""
    for handler in logger.handlers:
        present = {type(f) for f in handler.filters}
        for log_filter in configured_filters():
            if type(log_filter) not in present:
                handler.addFilter(log_filter)

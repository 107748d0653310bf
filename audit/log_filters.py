"""Log filters: the request id on every line, and no socket token in any line."""

import logging
import re

from .middleware import current_request_id

# /retell-llm/<agent socket token>/<call_id>: the token names the agent, so it is a secret.
_AGENT_TOKEN_IN_PATH = re.compile(r"(/retell-llm/)[A-Za-z0-9_-]{16,}(?=/)")
MASK = r"\1[agent-token]"


def redact_secret_paths(text: str) -> str:
    return _AGENT_TOKEN_IN_PATH.sub(MASK, text)


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class SecretPathFilter(logging.Filter):
    """Masks socket tokens in the message, including the paths servers log on connect."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secret_paths(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True

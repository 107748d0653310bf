"""The Retell REST client of one company, on the official retell-sdk.

- base URL from settings.RETELL_BASE_URL (tests point it at a loopback fake);
- the company's own API key, else settings.RETELL_API_KEY;
- connect and read timeouts from settings;
- retries only for calls that read (GET, and the POST /v2/list-agents query), bounded,
  with exponential backoff; the SDK's own retries are off, so an update (PATCH) or a
  create (POST) is sent exactly once;
- the list endpoints followed page by page through `pagination_key`;
- a circuit breaker per company, "retell:company:<id>", that every call passes;
- the outcome of each call that reached out (answered, refused, unreachable) kept as the
  company's last exchange (`RetellConnection`, in the database so that every process,
  web and worker, reports the same), which the dashboard and `mcp_status` show.

Answers are read as raw JSON (`with_raw_response`), so fields this product does not
model (other tools on an LLM, say) come back and go out exactly as Retell holds them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import httpx
import retell
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from audit.circuit import CircuitBreaker, CircuitOpen
from tenants.models import Company

from .models import RetellConnection

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
MAX_PAGES = 1000


class RetellError(Exception):
    """A Retell call failed. `message` is safe to show (no key, no body of ours)."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RetellNotConfigured(RetellError):
    pass


class RetellUnavailable(RetellError):
    """Retell did not answer usefully (timeout, connection, 5xx, 429) or the circuit is open."""

    transient = True


class RetellRejected(RetellError):
    """Retell answered and refused (4xx): a wrong key, an unknown agent, a bad field."""


def circuit_for(company_id: int) -> CircuitBreaker:
    return CircuitBreaker(f"retell:company:{company_id}",
                          failure_threshold=settings.RETELL_CIRCUIT_FAILURES,
                          reset_timeout=settings.RETELL_CIRCUIT_RESET_SECONDS)


def exchange_record(*, company_id: int, operation: str, outcome: str, status_code: int | None = None,
                    error: str = "") -> None:
    """Keep one exchange with Retell as the company's last: `outcome` a RetellConnection.Outcome,
    `status_code` Retell's HTTP status when it answered, `error` a message safe to show.
    A failure to record is logged and never fails the call it describes."""
    now = timezone.now()
    values = {"last_at": now, "operation": operation[:200], "outcome": outcome, "status_code": status_code,
              "error": error[:500]}
    if outcome == RetellConnection.Outcome.OK:
        values["last_ok_at"] = now
    rows = RetellConnection.objects.filter(company_id=company_id)
    try:
        with transaction.atomic():
            if not rows.update(**values):
                RetellConnection.objects.create(company_id=company_id, **values)
    except IntegrityError:  # another process made the row first
        rows.update(**values)
    except DatabaseError:
        logger.warning("The exchange with Retell of company %s could not be recorded", company_id, exc_info=True)


def api_key_for(company: Company) -> str:
    own = company.retell_api_key
    return own.reveal() if own is not None else settings.RETELL_API_KEY


class RetellClient:
    def __init__(self, company: Company) -> None:
        key = api_key_for(company)
        if not key:
            raise RetellNotConfigured("No Retell API key: set one on the company (Admin → Companies → the company → Retell) or RETELL_API_KEY.")
        self.company = company
        self.breaker = circuit_for(company.pk)
        self._sdk = retell.Retell(
            api_key=key,
            base_url=settings.RETELL_BASE_URL,
            timeout=httpx.Timeout(settings.RETELL_TIMEOUT_SECONDS, connect=settings.RETELL_CONNECT_TIMEOUT_SECONDS),
            max_retries=0,
        )

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self) -> "RetellClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the one way out ----------------------------------------------------------------
    def _call(self, what: str, send: Callable[[], Any], *, idempotent: bool) -> Any:
        attempts = 1 + (settings.RETELL_MAX_RETRIES if idempotent else 0)
        for attempt in range(attempts):
            try:
                self.breaker.check()
            except CircuitOpen as exc:
                raise RetellUnavailable(f"Retell is disconnected for this company (circuit open, next try in "
                                        f"{exc.retry_in:.0f} s).") from None
            try:
                data = send().json()
            except retell.APIStatusError as exc:
                if exc.status_code not in TRANSIENT_STATUSES:
                    self.breaker.record_success()  # Retell answered: the connection is fine
                    rejected = RetellRejected(f"{what}: Retell answered {exc.status_code} "
                                              f"({_error_message(exc)}).", status=exc.status_code)
                    self._exchanged(what, RetellConnection.Outcome.REJECTED, rejected)
                    raise rejected from None
                error = RetellUnavailable(f"{what}: Retell answered {exc.status_code}.", status=exc.status_code)
            except retell.APITimeoutError:
                error = RetellUnavailable(f"{what}: Retell did not answer within "
                                          f"{settings.RETELL_TIMEOUT_SECONDS:g} s.")
            except retell.APIConnectionError:
                error = RetellUnavailable(f"{what}: could not connect to Retell.")
            else:
                self.breaker.record_success()
                self._exchanged(what, RetellConnection.Outcome.OK)
                return data
            if attempt + 1 < attempts:
                delay = settings.RETELL_RETRY_BACKOFF_SECONDS * (2 ** attempt)
                logger.info("%s failed (%s); retry %d of %d in %.2f s", what, error.message, attempt + 1,
                            attempts - 1, delay)
                time.sleep(delay)
        self.breaker.record_failure(error.message)  # one failure per call, however many tries
        self._exchanged(what, RetellConnection.Outcome.UNREACHABLE, error)
        raise error

    def _exchanged(self, what: str, outcome: str, error: "RetellError | None" = None) -> None:
        exchange_record(company_id=self.company.pk, operation=what, outcome=outcome,
                        status_code=error.status if error else None, error=error.message if error else "")

    def _list_all(self, what: str, resource) -> list[dict]:
        """Every item of an SDK resource's paginated `list`, page by page through pagination_key."""
        limit = settings.RETELL_PAGE_SIZE

        def fetch(key: str | None):
            extra = {"pagination_key": key} if key else {}
            return resource.with_raw_response.list(limit=limit, **extra)

        return list(self._pages(what, fetch))

    def _pages(self, what: str, fetch: Callable[[str | None], Any]) -> Iterator[dict]:
        key = None
        for _ in range(MAX_PAGES):
            page = self._call(what, lambda key=key: fetch(key), idempotent=True)
            yield from page.get("items", [])
            key = page.get("pagination_key")
            if not page.get("has_more") or not key:
                return
        raise RetellUnavailable(f"{what}: more than {MAX_PAGES} pages.")

    def ping(self) -> None:
        """One cheap read (a single page of one Retell LLM): is Retell reachable with this key?"""
        # A probe answers for one try: no retries, so "unreachable" is reported as it is.
        self._call("reach Retell", lambda: self._sdk.llm.with_raw_response.list(limit=1), idempotent=False)

    # --- agents ---------------------------------------------------------------------------
    def get_agent(self, agent_id: str) -> dict:
        return self._call(f"get agent {agent_id}",
                          lambda: self._sdk.agent.with_raw_response.retrieve(agent_id), idempotent=True)

    def update_agent(self, agent_id: str, body: dict) -> dict:
        return self._call(f"update agent {agent_id}",
                          lambda: self._sdk.agent.with_raw_response.update(agent_id, **body), idempotent=False)

    def publish_agent(self, agent_id: str, *, version: int, title: str = "") -> None:
        """Publish the agent's draft `version` (POST /publish-agent-version/{agent_id}); Retell
        answers with no body, and a new draft (version + 1) takes the edits after it."""
        extra = {"version_title": title} if title else {}
        self._call(f"publish agent {agent_id} version {version}",
                   lambda: _NoBody(self._sdk.agent.with_raw_response.publish(agent_id, version=version, **extra)),
                   idempotent=False)

    def list_agents(self) -> list[dict]:
        """Every voice agent (POST /v2/list-agents; a query, so it may be retried)."""
        return [a for a in self._list_all("list agents", self._sdk.agent) if a.get("channel", "voice") == "voice"]

    # --- Retell LLMs ----------------------------------------------------------------------
    def get_llm(self, llm_id: str) -> dict:
        return self._call(f"get Retell LLM {llm_id}",
                          lambda: self._sdk.llm.with_raw_response.retrieve(llm_id), idempotent=True)

    def update_llm(self, llm_id: str, body: dict) -> dict:
        return self._call(f"update Retell LLM {llm_id}",
                          lambda: self._sdk.llm.with_raw_response.update(llm_id, **body), idempotent=False)

    def list_llms(self) -> list[dict]:
        return self._list_all("list Retell LLMs", self._sdk.llm)

    # --- voices ---------------------------------------------------------------------------
    def list_voices(self) -> list[dict]:
        """Every voice the workspace offers (GET /list-voices: an array of VoiceResponse)."""
        voices = self._call("list voices", lambda: self._sdk.voice.with_raw_response.list(), idempotent=True)
        if not isinstance(voices, list):
            raise RetellRejected("list voices: Retell's answer is not a list of voices.")
        return [v for v in voices if isinstance(v, dict) and v.get("voice_id")]

    # --- phone numbers ----------------------------------------------------------------------
    def list_phone_numbers(self) -> list[dict]:
        return self._list_all("list phone numbers", self._sdk.phone_number)

    def update_phone_number(self, phone_number: str, body: dict) -> dict:
        """PATCH /update-phone-number/{number}, e.g. {"inbound_agents": [{agent_id, weight,
        agent_version?}]} (weights sum to 1; Retell picks one per call, reference retell.md 5.4)."""
        return self._call(f"update phone number {phone_number}",
                          lambda: self._sdk.phone_number.with_raw_response.update(phone_number, **body),
                          idempotent=False)


class _NoBody:
    """A raw answer without a JSON body (publish): read as {}."""

    def __init__(self, raw) -> None:
        self._raw = raw

    def json(self) -> dict:
        try:
            data = self._raw.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def _error_message(exc: retell.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("error_message") or body.get("message") or exc.message or ""
    return str(message)[:200]

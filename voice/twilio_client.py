"""Twilio's REST API for one company, on the official `twilio` package, and the two things a live
call asks of it: put the caller through to a person, and hang up.

    twilio_transfer(company, call_sid, "+493083793369")   # True; False: the call had ended already
    twilio_hang_up(company, call_sid)                      # True; False: the call had ended already

- base URL from settings.TWILIO_API_BASE_URL (tests point it at a loopback fake);
- the company's account SID and auth token (encrypted on Company); none: TwilioNotConfigured;
- one timeout per request (TWILIO_TIMEOUT_SECONDS); reads (the numbers list) are retried
  TWILIO_MAX_RETRIES times with a doubling backoff, updates are sent exactly once;
- a circuit breaker per company, "twilio:company:<id>", that every call passes;
- a call that has already ended (Twilio's error 20404 on the call) is not an error.

Everything here blocks on the network: async code (the media-stream socket) runs it in a
thread (asgiref's sync_to_async). Error messages never hold the auth token.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import requests
from django.conf import settings
from django.core.exceptions import ValidationError

from audit.circuit import CircuitBreaker, CircuitOpen
from tenants.models import Company
from tenants.validators import validate_e164

from .protocols.twilio_webhooks import dial_twiml

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
CALL_NOT_FOUND = 20404  # Twilio's code for a resource it does not have: for a call, it has ended
MAX_NUMBERS = 10_000


class TwilioError(Exception):
    """A Twilio call failed. `message` is safe to show (no token); `code` is Twilio's error code."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class TwilioNotConfigured(TwilioError):
    """The company has no Twilio account SID or auth token."""


class TwilioUnavailable(TwilioError):
    """Twilio did not answer usefully (timeout, connection, 5xx, 429), or the circuit is open."""

    transient = True


class TwilioRejected(TwilioError):
    """Twilio answered and refused (4xx): wrong credentials, an unknown number, a bad field."""


def circuit_for(company_id: int) -> CircuitBreaker:
    return CircuitBreaker(f"twilio:company:{company_id}", failure_threshold=settings.TWILIO_CIRCUIT_FAILURES,
                          reset_timeout=settings.TWILIO_CIRCUIT_RESET_SECONDS)


def number_record(instance) -> dict:
    """What this product keeps of an IncomingPhoneNumber."""
    return {name: getattr(instance, name, None) or "" for name in
            ("sid", "phone_number", "friendly_name", "voice_url", "status_callback", "voice_application_sid",
             "trunk_sid")}


def _as_rest_exception(exc: Exception):
    """A list page Twilio refused comes as a bare TwilioException("Unable to fetch page", response):
    the same error as any refused call (status and Twilio's code), or `exc` when no answer is in it."""
    from twilio.base.exceptions import TwilioRestException

    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return exc
    try:
        error = json.loads(response.text)
    except (TypeError, ValueError):
        error = {}
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    return TwilioRestException(status, "", msg=str(error.get("message") or exc.args[0]), code=code)


class TwilioClient:
    """The company's Twilio REST client. Use it as a context manager (it holds a connection pool)."""

    def __init__(self, company: Company) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        account_sid = company.twilio_account_sid
        token = company.twilio_auth_token.reveal() if company.twilio_auth_token else ""
        if not account_sid or not token:
            raise TwilioNotConfigured("No Twilio account SID and auth token: set them on the company (Twilio).")
        self.company = company
        self.breaker = circuit_for(company.pk)
        self._http = TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS)
        # Credentials, region and edge are the company's and the settings', never the process
        # environment's (the SDK reads TWILIO_* variables from an empty mapping's fallback).
        self._sdk = Client(account_sid, token, http_client=self._http, environment={"VOICEDESK": "1"})
        self._sdk.api.base_url = settings.TWILIO_API_BASE_URL

    def close(self) -> None:
        if self._http.session is not None:
            self._http.session.close()

    def __enter__(self) -> "TwilioClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the one way out ----------------------------------------------------------------
    def _call(self, what: str, send: Callable[[], Any], *, idempotent: bool) -> Any:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        attempts = 1 + (settings.TWILIO_MAX_RETRIES if idempotent else 0)
        for attempt in range(attempts):
            try:
                self.breaker.check()
            except CircuitOpen as exc:
                raise TwilioUnavailable(f"Twilio is disconnected for this company (circuit open, next try in "
                                        f"{exc.retry_in:.0f} s).") from None
            try:
                try:
                    result = send()
                except TwilioRestException:
                    raise
                except TwilioException as exc:
                    raise _as_rest_exception(exc) from None
            except TwilioRestException as exc:
                if exc.status not in TRANSIENT_STATUSES:
                    self.breaker.record_success()  # Twilio answered: the connection is fine
                    raise TwilioRejected(f"{what}: Twilio answered {exc.status} ({str(exc.msg)[:200]}).",
                                         status=exc.status, code=exc.code) from None
                error = TwilioUnavailable(f"{what}: Twilio answered {exc.status}.", status=exc.status, code=exc.code)
            except requests.Timeout:
                error = TwilioUnavailable(f"{what}: Twilio did not answer within "
                                          f"{settings.TWILIO_TIMEOUT_SECONDS:g} s.")
            except requests.RequestException:
                error = TwilioUnavailable(f"{what}: could not connect to Twilio.")
            except (TwilioException, ValueError):  # an answer that is not what the API sends
                error = TwilioUnavailable(f"{what}: Twilio's answer could not be read.")
            else:
                self.breaker.record_success()
                return result
            if attempt + 1 < attempts:
                delay = settings.TWILIO_RETRY_BACKOFF_SECONDS * (2 ** attempt)
                logger.info("%s failed (%s); retry %d of %d in %.2f s", what, error.message, attempt + 1,
                            attempts - 1, delay)
                time.sleep(delay)
        self.breaker.record_failure(error.message)  # one failure per call, however many tries
        raise error

    # --- numbers -------------------------------------------------------------------------
    def list_numbers(self, *, phone_number: str | None = None) -> list[dict]:
        """The account's IncomingPhoneNumbers (all pages), or those matching `phone_number`."""
        extra = {"phone_number": phone_number} if phone_number else {}
        return self._call("list phone numbers", lambda: [
            number_record(n) for n in self._sdk.incoming_phone_numbers.list(limit=MAX_NUMBERS, **extra)],
            idempotent=True)

    def configure_number(self, number_sid: str, *, voice_url: str, status_callback: str) -> dict:
        """Point the number's voice webhook (POST) and status callback (POST) at this server; a
        TwiML App set on the number is removed, since Twilio would call it instead."""
        return self._call(f"configure number {number_sid}", lambda: number_record(
            self._sdk.incoming_phone_numbers(number_sid).update(
                voice_url=voice_url, voice_method="POST", status_callback=status_callback,
                status_callback_method="POST", voice_application_sid="")), idempotent=False)

    # --- calls ---------------------------------------------------------------------------
    def update_call(self, call_sid: str, **fields) -> bool:
        """Update a live call (`twiml=`, `status=`). False when the call has ended already (20404)."""
        try:
            self._call(f"update call {call_sid}", lambda: self._sdk.calls(call_sid).update(**fields),
                       idempotent=False)
        except TwilioRejected as exc:
            if exc.code == CALL_NOT_FOUND:
                return False
            raise
        return True


def twilio_transfer(company: Company, call_sid: str, number: str | None = None) -> bool:
    """Put call `call_sid` through to `number` (E.164; default: the company's phone number): the call
    gets the TwiML `<Dial>number</Dial>`, which ends its media stream. Returns False when the call
    had ended already. Raises ValueError for no number or one not in E.164 form, TwilioError when
    Twilio could not be reached or refused."""
    number = number or company.phone
    if not number:
        raise ValueError("No number to put the caller through to: the company has no phone number.")
    try:
        validate_e164(number)
    except ValidationError:
        raise ValueError(f"{number!r} is not a phone number in E.164 form.") from None
    with TwilioClient(company) as client:
        return client.update_call(call_sid, twiml=dial_twiml(number))


def twilio_hang_up(company: Company, call_sid: str) -> bool:
    """End call `call_sid` (`Status=completed`). Returns False when it had ended already. Raises
    TwilioError when Twilio could not be reached or refused."""
    with TwilioClient(company) as client:
        return client.update_call(call_sid, status="completed")

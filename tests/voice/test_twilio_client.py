"""Transfer and hang-up through Twilio's REST API (voice.twilio_client), against a loopback fake
of the API with the twilio package's base URL pointed at it."""

import xml.etree.ElementTree as ET

import pytest
from django.core.cache import cache

from tests.fakes import twilio
from voice.twilio_client import (TwilioClient, TwilioNotConfigured, TwilioRejected, TwilioUnavailable, circuit_for,
                                 twilio_hang_up, twilio_transfer)

pytestmark = pytest.mark.django_db

CALL_SID = "CA" + "7" * 32
PRACTICE = "+493083793369"


@pytest.fixture
def company(company_a):
    company_a.twilio_account_sid = twilio.ACCOUNT_SID
    company_a.twilio_auth_token = twilio.AUTH_TOKEN
    company_a.phone = PRACTICE
    company_a.save()
    cache.delete(f"circuit:twilio:company:{company_a.pk}")
    yield company_a
    cache.delete(f"circuit:twilio:company:{company_a.pk}")


def calls_path(sid: str = CALL_SID) -> str:
    return f"/2010-04-01/Accounts/{twilio.ACCOUNT_SID}/Calls/{sid}.json"


def test_a_transfer_updates_the_call_with_a_dial_to_the_number(company, fake_twilio_api):
    fake_twilio_api.add_call(CALL_SID)

    assert twilio_transfer(company, CALL_SID, "+4930111222333") is True

    [request] = fake_twilio_api.requests
    assert request.line == f"POST {calls_path()}"
    assert "Status" not in request.form
    root = ET.fromstring(request.form["Twiml"])
    assert [(child.tag, child.text) for child in root] == [("Dial", "+4930111222333")]


def test_a_transfer_without_a_number_dials_the_companys_own(company, fake_twilio_api):
    fake_twilio_api.add_call(CALL_SID)

    twilio_transfer(company, CALL_SID)

    assert ET.fromstring(fake_twilio_api.calls[CALL_SID].twiml[-1]).find("Dial").text == PRACTICE


@pytest.mark.parametrize("number", ["030 111", "+49 30 111 222", "not a number"])
def test_a_transfer_to_what_is_no_e164_number_sends_nothing(company, fake_twilio_api, number):
    fake_twilio_api.add_call(CALL_SID)

    with pytest.raises(ValueError):
        twilio_transfer(company, CALL_SID, number)

    assert fake_twilio_api.requests == []


def test_a_hang_up_completes_the_call(company, fake_twilio_api):
    fake_twilio_api.add_call(CALL_SID)

    assert twilio_hang_up(company, CALL_SID) is True

    [request] = fake_twilio_api.requests
    assert (request.line, request.form) == (f"POST {calls_path()}", {"Status": "completed"})
    assert fake_twilio_api.calls[CALL_SID].status == "completed"


def test_a_call_that_has_ended_already_is_not_an_error(company, fake_twilio_api):
    fake_twilio_api.add_call(CALL_SID)
    twilio_hang_up(company, CALL_SID)

    assert twilio_hang_up(company, CALL_SID) is False  # Twilio: 404, error 20404
    assert twilio_transfer(company, "CA" + "8" * 32, PRACTICE) is False  # a call Twilio never had
    assert circuit_for(company.pk).state().failures == 0


def test_wrong_credentials_are_refused_without_showing_the_token(company, fake_twilio_api):
    company.twilio_auth_token = "a_token_twilio_does_not_know_42"
    company.save()
    fake_twilio_api.add_call(CALL_SID)

    with pytest.raises(TwilioRejected) as caught:
        twilio_hang_up(company, CALL_SID)

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert "a_token_twilio_does_not_know_42" not in caught.value.message


def test_an_update_is_sent_once_even_when_twilio_fails(company, fake_twilio_api):
    fake_twilio_api.add_call(CALL_SID)
    fake_twilio_api.fail(503, path="/Calls/")

    with pytest.raises(TwilioUnavailable):
        twilio_transfer(company, CALL_SID, PRACTICE)

    assert len(fake_twilio_api.requests) == 1


def test_a_read_is_retried_after_a_transient_failure(company, fake_twilio_api):
    fake_twilio_api.add_number("+493083793369")
    fake_twilio_api.fail(503, path="/IncomingPhoneNumbers")

    with TwilioClient(company) as client:
        numbers = client.list_numbers()

    assert [n["phone_number"] for n in numbers] == ["+493083793369"]
    assert len(fake_twilio_api.requests) == 2


def test_every_page_of_numbers_is_read(company, fake_twilio_api):
    fake_twilio_api.page_size_cap = 2
    for number in ("+493083793369", "+493083793370", "+493083793371"):
        fake_twilio_api.add_number(number)

    with TwilioClient(company) as client:
        numbers = client.list_numbers()

    assert [n["phone_number"] for n in numbers] == ["+493083793369", "+493083793370", "+493083793371"]
    assert len(fake_twilio_api.requests) == 2


def test_a_twilio_that_does_not_answer_in_time_is_unavailable(company, fake_twilio_api, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 0.3
    fake_twilio_api.add_call(CALL_SID)
    fake_twilio_api.stall(3, path="/Calls/")

    with pytest.raises(TwilioUnavailable) as caught:
        twilio_hang_up(company, CALL_SID)

    assert "did not answer" in caught.value.message


def test_failures_in_a_row_open_the_circuit_and_nothing_is_sent(company, fake_twilio_api, settings):
    settings.TWILIO_CIRCUIT_FAILURES = 2
    fake_twilio_api.add_call(CALL_SID)
    fake_twilio_api.fail(503, path="/Calls/", times=2)
    for _ in range(2):
        with pytest.raises(TwilioUnavailable):
            twilio_hang_up(company, CALL_SID)

    with pytest.raises(TwilioUnavailable) as caught:
        twilio_hang_up(company, CALL_SID)

    assert "circuit open" in caught.value.message
    assert len(fake_twilio_api.requests) == 2


def test_a_company_without_credentials_is_not_configured(company_a, fake_twilio_api):
    with pytest.raises(TwilioNotConfigured):
        twilio_hang_up(company_a, CALL_SID)

    assert fake_twilio_api.requests == []


def test_a_refused_list_is_rejected_with_twilios_code_and_not_retried(company, fake_twilio_api):
    fake_twilio_api.fail(401, path="/IncomingPhoneNumbers", code=20003)

    with TwilioClient(company) as client, pytest.raises(TwilioRejected) as caught:
        client.list_numbers()

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert len(fake_twilio_api.requests) == 1

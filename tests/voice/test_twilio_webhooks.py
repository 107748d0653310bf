"""POST /api/voice-agent/incoming and /api/voice-agent/status: receipts first, the company and
agent from the called number, X-Twilio-Signature as the twilio package judges it over the public
URL Twilio called, TwiML built with the twilio package, status callbacks in SequenceNumber order."""

from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from appointments.models import Appointment
from audit.models import ActivityLogEntry, WebhookReceipt
from tests.factories import _appointment
from tests.fakes import twilio
from tests.voice.conftest import TWILIO_NUMBER, TWILIO_PUBLIC
from voice.models import Call, TwilioNumber
from voice.selectors import twilio_number_of_call
from voice.twilio_tokens import StreamGrant, verify_and_consume

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection

PUBLIC, NUMBER = TWILIO_PUBLIC, TWILIO_NUMBER
INCOMING, STATUS = "/api/voice-agent/incoming", "/api/voice-agent/status"


def only_receipt() -> WebhookReceipt:
    [receipt] = WebhookReceipt.objects.all()
    return receipt


def stream_of(response):
    """The <Stream> of a TwiML answer and its parameters, checking the answer's shape on the way."""
    root = twilio.twiml(response)
    assert root.tag == "Response"
    [connect] = list(root)
    assert connect.tag == "Connect"
    [stream] = list(connect)
    assert stream.tag == "Stream"
    assert all(child.tag == "Parameter" for child in stream)
    return stream, {p.get("name"): p.get("value") for p in stream}


def said_goodbye(response, language: str) -> str:
    """The text of a `<Say language>…</Say><Hangup/>` answer."""
    assert response.status_code == 200
    root = twilio.twiml(response)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].get("language") == language
    return root[0].text


# --- the incoming call ----------------------------------------------------------------------------
def test_a_signed_call_is_answered_with_its_media_stream_and_a_one_time_token(client, twilio_number):
    sid = twilio.new_call_sid()

    response = twilio.post(client, INCOMING, twilio.incoming_form(to=NUMBER, call_sid=sid), signed_url=PUBLIC + INCOMING)

    assert response.status_code == 200
    stream, parameters = stream_of(response)
    assert stream.get("url") == "wss://voice.example.com/voice-agent/media-stream"
    assert set(parameters) == {"token"}
    assert verify_and_consume(parameters["token"], sid) == StreamGrant(
        company_id=twilio_number.company_id, agent_id=twilio_number.agent_id, call_sid=sid)
    receipt = only_receipt()
    assert (receipt.provider, receipt.status, receipt.kind, receipt.call_id, receipt.company_id) == (
        "twilio", "processed", "call", sid, twilio_number.company_id)
    assert receipt.headers["X-Twilio-Signature"]
    call = Call.objects.get(call_id=sid)
    assert (call.source, call.agent_id, call.from_number, call.to_number, call.direction, call.status) == (
        "twilio", twilio_number.agent_id, twilio.CALLER, NUMBER, "inbound", "ringing")
    # Twilio reports only the end of an inbound call to the number's status callback: the call
    # starts when it is answered here.
    assert call.started_at == receipt.received_at
    assert ActivityLogEntry.objects.filter(kind="twilio.call_incoming", data__call_id=sid).exists()
    # The socket finds the number called, whose speech providers override the company's.
    assert twilio_number_of_call(company_id=twilio_number.company_id, call_sid=sid) == twilio_number
    assert twilio_number_of_call(company_id=twilio_number.company_id + 1, call_sid=sid) is None


@pytest.mark.parametrize("case", ["tampered_parameter", "added_parameter", "wrong_token", "no_signature"])
def test_a_bad_signature_is_refused_403_and_stored(client, twilio_number, case):
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())
    signature = twilio.sign(PUBLIC + INCOMING, form, "another_accounts_token" if case == "wrong_token"
                            else twilio.AUTH_TOKEN)
    sent = {"tampered_parameter": {**form, "From": "+4915199999999"}, "added_parameter": {**form, "Digits": "0"}
            }.get(case, form)

    response = twilio.post(client, INCOMING, sent, signed_url=PUBLIC + INCOMING,
                           signature="" if case == "no_signature" else signature)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == ("signature_missing" if case == "no_signature" else "signature_invalid")
    receipt = only_receipt()
    assert (receipt.status, receipt.company_id) == ("rejected", twilio_number.company_id)
    assert bytes(receipt.body) == urlencode(sent).encode()
    assert not Call.objects.exists()
    assert ActivityLogEntry.objects.filter(kind="webhook.rejected").count() == 1


# (PUBLIC_BASE_URL, the path Twilio called, the URL the signature is over): accepted exactly when
# the twilio package's validator accepts the signature for the URL Twilio called.
URL_FORMS = {
    "trailing_slash": (PUBLIC, INCOMING + "/", PUBLIC + INCOMING + "/"),
    "slash_called_but_not_signed": (PUBLIC, INCOMING + "/", PUBLIC + INCOMING),
    "query_string": (PUBLIC, INCOMING + "?tenant=alpha&lang=de", PUBLIC + INCOMING + "?tenant=alpha&lang=de"),
    "query_string_not_signed": (PUBLIC, INCOMING + "?tenant=alpha", PUBLIC + INCOMING),
    "port_dropped_by_twilio": ("https://voice.example.com:8443", INCOMING, PUBLIC + INCOMING),
    "port_kept": ("https://voice.example.com:8443", INCOMING, "https://voice.example.com:8443" + INCOMING),
    "other_port": ("https://voice.example.com:8443", INCOMING, "https://voice.example.com:9443" + INCOMING),
    "http_not_https": (PUBLIC, INCOMING, "http://voice.example.com" + INCOMING),
    "other_host": (PUBLIC, INCOMING, "https://voice.example.org" + INCOMING),
}


@pytest.mark.parametrize("case", URL_FORMS)
def test_the_signature_covers_the_public_url_as_the_twilio_package_judges_it(client, twilio_number, settings, case):
    public, called_path, signed_url = URL_FORMS[case]
    settings.PUBLIC_BASE_URL = public
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())
    signature = twilio.sign(signed_url, form)
    validator_accepts = RequestValidator(twilio.AUTH_TOKEN).validate(public + called_path, form, signature)

    response = twilio.post(client, called_path, form, signed_url=signed_url)

    assert response.status_code == (200 if validator_accepts else 403)
    assert validator_accepts is not case.endswith(("not_signed", "other_port", "not_https", "other_host"))
    if validator_accepts:
        stream, _ = stream_of(response)
        assert stream.get("url") == "wss://" + public.removeprefix("https://") + "/voice-agent/media-stream"


def test_behind_a_tls_proxy_the_forwarded_scheme_and_host_are_the_url_twilio_called(client, twilio_number, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"  # not the public one: the proxy's headers tell it
    settings.BEHIND_TLS_PROXY = True
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url="https://desk.example.org" + INCOMING,
                           HTTP_X_FORWARDED_PROTO="https, http", HTTP_X_FORWARDED_HOST="desk.example.org")

    assert response.status_code == 200
    stream, _ = stream_of(response)
    assert stream.get("url") == "wss://desk.example.org/voice-agent/media-stream"


def test_without_a_tls_proxy_forwarded_headers_are_not_trusted(client, twilio_number, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    settings.BEHIND_TLS_PROXY = False
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url="https://desk.example.org" + INCOMING,
                           HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="desk.example.org")

    assert response.status_code == 403


def test_a_number_not_known_here_hears_a_polite_goodbye_in_the_platforms_language(client, twilio_number):
    form = twilio.incoming_form(to="+12125550100", call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING)

    assert "try again later" in said_goodbye(response, "en-US")
    receipt = only_receipt()
    assert (receipt.status, receipt.error_code, receipt.company_id) == ("rejected", "unknown_number", None)
    assert not Call.objects.exists()


def test_a_company_with_twilio_off_says_goodbye_in_its_language(client, twilio_number):
    Company = type(twilio_number.company)
    Company.objects.filter(pk=twilio_number.company_id).update(twilio_enabled=False)
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING)

    assert "nicht erreichbar" in said_goodbye(response, "de-DE")
    receipt = only_receipt()
    assert (receipt.status, receipt.error_code, receipt.company_id) == ("rejected", "twilio_disabled",
                                                                         twilio_number.company_id)
    assert not Call.objects.exists()
    assert ActivityLogEntry.objects.filter(kind="twilio.call_refused").count() == 1


def test_a_number_no_agent_answers_says_goodbye(client, twilio_number):
    TwilioNumber.objects.filter(pk=twilio_number.pk).update(agent=None)
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING)

    assert "nicht erreichbar" in said_goodbye(response, "de-DE")
    assert only_receipt().error_code == "no_agent"


def test_a_company_without_an_auth_token_cannot_verify_and_says_goodbye(client, twilio_number):
    company = twilio_number.company
    company.twilio_auth_token = None
    company.save()
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING)

    said_goodbye(response, "de-DE")
    assert only_receipt().error_code == "twilio_not_configured"


def test_a_call_of_an_inactive_company_is_not_known_here(client, twilio_number):
    type(twilio_number.company).objects.filter(pk=twilio_number.company_id).update(is_active=False)
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING)

    said_goodbye(response, "en-US")
    assert only_receipt().error_code == "unknown_number"


def test_another_companys_token_does_not_open_this_companys_number(client, twilio_number, company_b):
    company_b.twilio_auth_token = "company_b_token_0123456789"
    company_b.twilio_enabled = True
    company_b.save()
    TwilioNumber.objects.create(company=company_b, phone_number="+12125550134")
    form = twilio.incoming_form(to=NUMBER, call_sid=twilio.new_call_sid())

    response = twilio.post(client, INCOMING, form, signed_url=PUBLIC + INCOMING, token="company_b_token_0123456789")

    assert response.status_code == 403


@pytest.mark.parametrize("form, code", [
    ({"CallSid": ""}, "call_sid_missing"),
    ({"CallSid": "CA\x00" + "1" * 31}, "invalid_field"),
    ({"CallSid": "CA" + "1" * 100}, "invalid_field"),
], ids=["empty", "nul", "too_long"])
def test_a_signed_request_without_a_usable_call_sid_is_400(client, twilio_number, form, code):
    sent = {**twilio.incoming_form(to=NUMBER, call_sid="x"), **form}

    response = twilio.post(client, INCOMING, sent, signed_url=PUBLIC + INCOMING)

    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert only_receipt().status == "rejected"


def test_a_body_that_is_not_utf8_form_data_is_400_and_stored(client, twilio_number):
    response = twilio.post(client, INCOMING, {}, signed_url=PUBLIC + INCOMING, body=b"To=%FF%FE&CallSid=\xff")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_form")
    assert bytes(only_receipt().body) == b"To=%FF%FE&CallSid=\xff"


def test_a_body_with_more_fields_than_twilio_sends_is_400(client, twilio_number):
    body = "&".join(f"Field{i}=1" for i in range(201)).encode()

    response = twilio.post(client, INCOMING, {}, signed_url=PUBLIC + INCOMING, body=body)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_form")


def test_only_post_is_accepted(client, twilio_number):
    assert client.get(INCOMING).status_code == 405
    assert client.get(STATUS).status_code == 405


# --- status callbacks --------------------------------------------------------------------------------
def post_status(client, sid: str, status: str, sequence: int | None = None, **extra):
    form = twilio.status_form(to=NUMBER, call_sid=sid, status=status, sequence=sequence, **extra)
    return twilio.post(client, STATUS, form, signed_url=PUBLIC + STATUS)


def test_status_callbacks_in_order_start_and_end_the_call(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()
    twilio.post(client, INCOMING, twilio.incoming_form(to=NUMBER, call_sid=sid), signed_url=PUBLIC + INCOMING)

    answers = [post_status(client, sid, "ringing", 0).status_code,
               post_status(client, sid, "in-progress", 1, Timestamp="Mon, 07 Jan 2030 08:15:00 +0000").status_code,
               post_status(client, sid, "completed", 2, duration=42,
                           Timestamp="Mon, 07 Jan 2030 08:15:42 +0000").status_code]

    assert answers == [204, 204, 204]
    call = Call.objects.get(call_id=sid)
    assert (call.status, call.duration_ms, call.last_event) == ("completed", 42000, "twilio.completed")
    assert (call.started_at.isoformat(), call.ended_at.isoformat()) == ("2030-01-07T08:15:00+00:00",
                                                                         "2030-01-07T08:15:42+00:00")
    assert WebhookReceipt.objects.filter(kind="event", status="processed").count() == 3


def test_callbacks_out_of_order_apply_by_sequence_number(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()

    post_status(client, sid, "in-progress", 3)
    post_status(client, sid, "ringing", 1)

    assert Call.objects.get(call_id=sid).status == "in-progress"


def test_a_status_this_server_does_not_know_takes_its_place_by_sequence_number(client, twilio_number,
                                                                                celery_eager):
    sid = twilio.new_call_sid()

    post_status(client, sid, "answering-machine", 5)  # a status Twilio might add one day
    post_status(client, sid, "ringing", 1)

    call = Call.objects.get(call_id=sid)
    assert (call.status, call.ended_at) == ("answering-machine", None)


def test_a_late_callback_never_reopens_an_ended_call(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()
    post_status(client, sid, "completed", None, duration=30)  # without SequenceNumber: its place is the end

    post_status(client, sid, "in-progress", 2)
    post_status(client, sid, "ringing", 1)
    twilio.post(client, INCOMING, twilio.incoming_form(to=NUMBER, call_sid=sid), signed_url=PUBLIC + INCOMING)

    call = Call.objects.get(call_id=sid)
    assert (call.status, call.duration_ms, call.agent_id) == ("completed", 30000, twilio_number.agent_id)
    assert call.last_event == "twilio.completed"
    assert {"twilio.incoming", "twilio.ringing", "twilio.in-progress", "twilio.completed"} == set(call.events)


def test_the_same_callback_twice_is_a_duplicate_and_applied_once(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()

    first, again = post_status(client, sid, "completed", 2, duration=5), post_status(client, sid, "completed", 2,
                                                                                       duration=5)

    assert (first.status_code, again.status_code) == (204, 204)
    assert sorted(WebhookReceipt.objects.values_list("status", flat=True)) == ["duplicate", "processed"]
    assert ActivityLogEntry.objects.filter(kind="webhook.processed").count() == 1


def test_the_end_of_the_call_confirms_the_appointments_booked_in_it(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()
    appointment = _appointment(twilio_number.company, call_id=sid)
    Appointment.objects.filter(pk=appointment.pk).update(status="pending", confirmed_at=None)
    post_status(client, sid, "in-progress", 1)
    assert Appointment.objects.get(pk=appointment.pk).status == "pending"

    post_status(client, sid, "completed", 2, duration=60)

    assert Appointment.objects.get(pk=appointment.pk).status == "confirmed"


def test_a_status_holding_a_nul_is_applied_cleaned_not_failed(client, twilio_number, celery_eager):
    sid = twilio.new_call_sid()

    assert post_status(client, sid, "in-\x00progress", 1).status_code == 204

    assert only_receipt().status == "processed"
    assert Call.objects.get(call_id=sid).status == "in-progress"


def test_a_status_callback_with_a_bad_signature_is_403(client, twilio_number):
    form = twilio.status_form(to=NUMBER, call_sid=twilio.new_call_sid(), status="completed", sequence=1)

    response = twilio.post(client, STATUS, form, signed_url=PUBLIC + INCOMING)  # signed for the other URL

    assert response.status_code == 403
    assert only_receipt().status == "rejected"


def test_a_status_callback_for_a_number_not_known_here_is_404(client, twilio_number):
    form = twilio.status_form(to="+12125550100", call_sid=twilio.new_call_sid(), status="completed")

    response = twilio.post(client, STATUS, form, signed_url=PUBLIC + STATUS)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_number")
    assert only_receipt().status == "rejected"


def test_a_status_callback_without_a_status_is_400(client, twilio_number):
    form = twilio.status_form(to=NUMBER, call_sid=twilio.new_call_sid(), status="")

    response = twilio.post(client, STATUS, form, signed_url=PUBLIC + STATUS)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "call_status_missing")

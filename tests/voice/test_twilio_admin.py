"""The admin's Twilio numbers: pulled from the company's Twilio account, an agent and speech
providers per number, and "Configure on Twilio" pushing the voice URL and status callback, like
Save & Deploy for Retell (audited, in the activity log); scoped like every tenant admin."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from guardian.shortcuts import assign_perm

from audit.actor import Actor
from audit.models import ActivityLogEntry, AuditEntry
from retell_config.models import Agent
from tests.factories import make_member
from tests.fakes import twilio
from tests.voice.conftest import TWILIO_NUMBER, TWILIO_PUBLIC
from voice.models import TwilioNumber
from voice.twilio_numbers import twilio_number_save

pytestmark = pytest.mark.django_db(transaction=True)  # the end-to-end case posts to the webhook

CHANGELIST = reverse("admin:voice_twilionumber_changelist")
PULL = reverse("admin:voice_twilionumber_pull")
VOICE_URL, STATUS_URL = TWILIO_PUBLIC + "/api/voice-agent/incoming", TWILIO_PUBLIC + "/api/voice-agent/status"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def configure(client, *numbers):
    return client.post(CHANGELIST, {"action": "configure_on_twilio", "_selected_action": [n.pk for n in numbers]},
                       follow=True)


@pytest.fixture
def owner(client, twilio_number):
    user = make_member(twilio_number.company, "owner")
    client.force_login(user)
    return user


# --- pull ------------------------------------------------------------------------------------------
def test_pull_adds_the_accounts_numbers_and_brings_known_ones_up_to_date(client, owner, twilio_number,
                                                                         fake_twilio_api):
    fake_twilio_api.add_number(TWILIO_NUMBER, friendly_name="Reception", voice_url="https://old.example.com/voice")
    fake_twilio_api.add_number("+493083793370", friendly_name="Backup line")

    response = client.post(PULL, {"company": twilio_number.company_id}, follow=True)

    assert "1 new, 1 updated" in " ".join(messages_of(response))
    rows = {n.phone_number: n for n in TwilioNumber.objects.all()}
    assert set(rows) == {TWILIO_NUMBER, "+493083793370"}
    known, new = rows[TWILIO_NUMBER], rows["+493083793370"]
    assert (known.friendly_name, known.voice_url, known.agent_id) == (
        "Reception", "https://old.example.com/voice", twilio_number.agent_id)
    assert known.number_sid.startswith("PN") and new.number_sid.startswith("PN")
    assert (new.friendly_name, new.agent, new.company_id) == ("Backup line", None, twilio_number.company_id)
    assert AuditEntry.objects.filter(action="pull_from_twilio", object_type="voice.twilionumber").count() == 2
    assert ActivityLogEntry.objects.filter(kind="twilio.numbers_pulled").count() == 1


def test_a_number_another_company_holds_is_not_taken_nor_named(client, owner, twilio_number, fake_twilio_api,
                                                               company_b):
    held = TwilioNumber.objects.create(company=company_b, phone_number="+12125550134")
    fake_twilio_api.add_number("+12125550134")

    response = client.post(PULL, {"company": twilio_number.company_id}, follow=True)

    assert "1 not available here (+12125550134)" in " ".join(messages_of(response))
    assert company_b.name not in response.content.decode()
    assert TwilioNumber.objects.get(pk=held.pk).company_id == company_b.pk


def test_a_failed_pull_is_reported_and_logged(client, owner, twilio_number, fake_twilio_api):
    fake_twilio_api.fail(401, code=20003, times=1)

    response = client.post(PULL, {"company": twilio_number.company_id}, follow=True)

    assert "Pulling from Twilio failed" in " ".join(messages_of(response))
    assert ActivityLogEntry.objects.filter(kind="twilio.numbers_pull_failed", level="error").count() == 1


# --- configure -------------------------------------------------------------------------------------
def test_configure_points_the_number_at_this_server(client, owner, twilio_number, fake_twilio_api):
    pulled = fake_twilio_api.add_number(TWILIO_NUMBER, voice_application_sid="AP" + "0" * 32)
    TwilioNumber.objects.filter(pk=twilio_number.pk).update(number_sid=pulled["sid"])

    response = configure(client, twilio_number)

    assert f"Configured on Twilio: {TWILIO_NUMBER}" in " ".join(messages_of(response))
    on_twilio = fake_twilio_api.numbers[pulled["sid"]]
    assert (on_twilio["voice_url"], on_twilio["voice_method"]) == (VOICE_URL, "POST")
    assert (on_twilio["status_callback"], on_twilio["status_callback_method"]) == (STATUS_URL, "POST")
    assert on_twilio["voice_application_sid"] == ""  # a TwiML App would be called instead of the voice URL
    number = TwilioNumber.objects.get(pk=twilio_number.pk)
    assert (number.voice_url, number.status_callback) == (VOICE_URL, STATUS_URL)
    assert number.configured_at is not None
    entry = AuditEntry.objects.get(action="configure_on_twilio")
    assert (entry.object_id, entry.actor_user_id) == (str(number.pk), owner.pk)
    assert set(entry.changes) >= {"voice_url", "status_callback", "configured_at"}
    assert ActivityLogEntry.objects.filter(kind="twilio.number_configured",
                                           data__twilio_number_id=number.pk).count() == 1


def test_configure_finds_a_number_without_its_sid_by_the_phone_number(client, owner, twilio_number,
                                                                      fake_twilio_api):
    pulled = fake_twilio_api.add_number(TWILIO_NUMBER)

    configure(client, twilio_number)

    assert fake_twilio_api.numbers[pulled["sid"]]["voice_url"] == VOICE_URL
    assert TwilioNumber.objects.get(pk=twilio_number.pk).number_sid == pulled["sid"]


def test_a_failed_configure_is_reported_logged_and_changes_nothing(client, owner, twilio_number, fake_twilio_api):
    pulled = fake_twilio_api.add_number(TWILIO_NUMBER)
    TwilioNumber.objects.filter(pk=twilio_number.pk).update(number_sid=pulled["sid"])
    fake_twilio_api.fail(503, method="POST")

    response = configure(client, twilio_number)

    assert f"{TWILIO_NUMBER}: configure number" in " ".join(messages_of(response))
    assert TwilioNumber.objects.get(pk=twilio_number.pk).configured_at is None
    assert not AuditEntry.objects.filter(action="configure_on_twilio").exists()
    assert ActivityLogEntry.objects.filter(kind="twilio.number_configure_failed", level="error").count() == 1


def test_a_number_configured_from_the_admin_answers_with_its_agent(client, owner, twilio_number, fake_twilio_api):
    fake_twilio_api.add_number(TWILIO_NUMBER)
    configure(client, twilio_number)
    voice_url = next(iter(fake_twilio_api.numbers.values()))["voice_url"]

    # Twilio calls the voice URL it now holds, signed over that URL.
    form = twilio.incoming_form(to=TWILIO_NUMBER, call_sid=twilio.new_call_sid())
    response = twilio.post(client, voice_url.removeprefix(TWILIO_PUBLIC), form, signed_url=voice_url)

    assert response.status_code == 200
    stream = twilio.twiml(response).find("Connect/Stream")
    assert stream.get("url") == "wss://voice.example.com/voice-agent/media-stream"


# --- the forms ---------------------------------------------------------------------------------------
def test_a_number_chooses_its_speech_providers_from_the_registry(client, owner, twilio_number):
    form = client.get(reverse("admin:voice_twilionumber_change", args=[twilio_number.pk])).context["adminform"].form

    assert [value for value, _ in form.fields["stt_provider"].choices] == ["", "offline", "elevenlabs", "openai"]
    assert [value for value, _ in form.fields["tts_provider"].choices] == ["", "offline", "elevenlabs"]


def test_the_company_turns_twilio_on_and_chooses_its_speech_providers(client, owner, twilio_number):
    page = client.get(reverse("admin:tenants_company_change", args=[twilio_number.company_id]))
    form = page.context["adminform"].form

    assert {"twilio_enabled", "twilio_account_sid", "twilio_auth_token", "stt_provider", "tts_provider"} <= set(
        form.fields)
    assert twilio.AUTH_TOKEN not in page.content.decode()
    assert [value for value, _ in form.fields["stt_provider"].choices] == ["", "offline", "elevenlabs", "openai"]


# --- who may do what ------------------------------------------------------------------------------------
def test_a_viewer_neither_configures_nor_pulls(client, twilio_number, fake_twilio_api):
    client.force_login(make_member(twilio_number.company, "viewer"))

    listing = client.get(CHANGELIST)
    configured = configure(client, twilio_number)

    assert listing.context["action_form"] is None  # no action is offered to a viewer
    assert configured.status_code == 200
    assert client.get(PULL).status_code == 403
    assert client.post(PULL, {"company": twilio_number.company_id}).status_code == 403
    assert fake_twilio_api.requests == []


@pytest.fixture
def limited_editor(client, twilio_number):
    """An editor of company_a limited to its main agent; a second agent answers another number."""
    company = twilio_number.company
    hidden_agent = Agent.objects.create(company=company, agent_id="agent_xyz789", name="Backup Agent")
    hidden = TwilioNumber.objects.create(company=company, phone_number="+493083793370", agent=hidden_agent)
    spare = TwilioNumber.objects.create(company=company, phone_number="+493083793371")
    user = make_member(company, "editor", limited=True)
    for action in ("view", "change"):
        assign_perm(f"retell_config.{action}_agent", user, twilio_number.agent)
    client.force_login(user)
    return user, hidden, spare, hidden_agent


def test_a_limited_member_sees_and_configures_only_its_agents_numbers(client, twilio_number, fake_twilio_api,
                                                                      limited_editor):
    _, hidden, spare, _ = limited_editor
    for number in (twilio_number, hidden, spare):
        fake_twilio_api.add_number(number.phone_number)

    listed = {n.pk for n in client.get(CHANGELIST).context["cl"].queryset}
    configure(client, twilio_number, hidden)

    assert listed == {twilio_number.pk, spare.pk}  # a number no agent answers is the company's
    configured = {n["phone_number"] for n in fake_twilio_api.numbers.values() if n["voice_url"]}
    assert configured == {twilio_number.phone_number}
    assert client.get(reverse("admin:voice_twilionumber_change", args=[hidden.pk])).status_code == 404


def test_a_limited_member_may_not_pull_every_number(client, twilio_number, fake_twilio_api, limited_editor):
    response = client.post(PULL, {"company": twilio_number.company_id})

    assert response.status_code == 403
    assert fake_twilio_api.requests == []


def test_a_limited_member_lets_only_its_own_agents_answer(client, twilio_number, limited_editor):
    user, _, spare, hidden_agent = limited_editor
    form = client.get(reverse("admin:voice_twilionumber_change", args=[spare.pk])).context["adminform"].form

    assert set(form.fields["agent"].queryset) == {twilio_number.agent}
    spare.agent = hidden_agent
    with pytest.raises(PermissionDenied):
        twilio_number_save(actor=Actor(kind="user", label=user.username, user=user), number=spare)
    assert TwilioNumber.objects.get(pk=spare.pk).agent is None


def test_a_number_another_company_holds_cannot_be_added_and_its_owner_is_not_told(client, owner, twilio_number,
                                                                                   company_b):
    TwilioNumber.objects.create(company=company_b, phone_number="+12125550134")

    response = client.post(reverse("admin:voice_twilionumber_add"),
                           {"company": twilio_number.company_id, "phone_number": "+12125550134"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["phone_number"] == [
        "This phone number cannot be added here. Check the number in your Twilio console."]

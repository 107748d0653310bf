"""The Live Debug Console's socket, through the real ASGI application (session cookie,
origin check, routing) and the Redis channel layer: which lines reach which viewer."""

import asyncio

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from audit.services import activity_log
from config.asgi import application
from tests.factories import make_member

ORIGIN = (b"origin", b"http://127.0.0.1")


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _open(user, company_id, *, origin=ORIGIN):
    headers = [origin] + ([(b"cookie", await database_sync_to_async(_cookie)(user))] if user is not None else [])
    communicator = WebsocketCommunicator(application, f"/admin/monitoring/console/socket/?company={company_id}",
                                         headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def _log(**kwargs):
    # activity_log broadcasts on commit; outside a transaction that is at once. database_sync_to_async
    # closes the thread's connection after, so none is left when the test database goes.
    return await database_sync_to_async(activity_log)(**kwargs)


async def _lines(communicator, timeout: float = 1.0) -> list[str]:
    """The messages of the line frames that arrive within `timeout`."""
    messages = []
    # receive_nothing first: a receive that times out cancels the application.
    while not await communicator.receive_nothing(timeout=timeout):
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] == "line":
            messages.append(frame["line"]["message"])
    return messages


def run(coro):
    return asyncio.run(coro)


def test_another_companys_line_never_reaches_the_socket(two_companies):
    alpha, beta = two_companies["alpha"], two_companies["beta"]
    owner = make_member(alpha, "owner")

    async def scenario():
        communicator, connected = await _open(owner, alpha.pk)
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["type"] == "ready"
        await _log(company=beta, kind="webhook.received", message="beta line", data={"call_id": "call_beta_1"})
        await _log(company=alpha, kind="webhook.received", message="alpha line", data={"call_id": "call_main_1"})
        received = await _lines(communicator)
        await communicator.disconnect()
        return received

    assert run(scenario()) == ["alpha line"]


def test_a_company_the_user_is_not_a_member_of_is_refused_with_an_error_frame(two_companies):
    owner = make_member(two_companies["alpha"], "owner")

    async def scenario():
        communicator, connected = await _open(owner, two_companies["beta"].pk)
        frame = await communicator.receive_json_from(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        return connected, frame, closed

    connected, frame, closed = run(scenario())
    assert connected  # accepted to say why, then closed
    assert frame == {"type": "error", "error": {"code": "company_not_allowed",
                                                "message": "You may not view this company's activity log."}}
    assert closed == {"type": "websocket.close", "code": 4403}


def test_without_a_session_the_socket_says_so_and_closes(two_companies):
    async def scenario():
        communicator, _ = await _open(None, two_companies["alpha"].pk)
        frame = await communicator.receive_json_from(timeout=5)
        return frame, await communicator.receive_output(timeout=5)

    frame, closed = run(scenario())
    assert frame["error"]["code"] == "not_authenticated"
    assert closed["code"] == 4403


def test_a_page_of_another_site_cannot_open_the_socket_with_the_admins_cookie(two_companies):
    owner = make_member(two_companies["alpha"], "owner")

    async def scenario():
        communicator, connected = await _open(owner, two_companies["alpha"].pk,
                                              origin=(b"origin", b"https://evil.example.com"))
        await communicator.disconnect()
        return connected

    assert run(scenario()) is False


def test_a_member_limited_to_one_agent_gets_only_that_agents_lines_live(two_companies, limited_member):
    alpha = two_companies["alpha"]

    async def scenario():
        communicator, _ = await _open(limited_member, alpha.pk)
        assert (await communicator.receive_json_from(timeout=5))["type"] == "ready"
        await _log(company=alpha, kind="webhook.received", message="backup call line",
                   data={"call_id": "call_backup_1"})
        await _log(company=alpha, kind="retell.functions.export", message="backup agent line",
                   data={"agent_id": "agent_backup"})
        await _log(company=alpha, kind="webhook.received", message="main call line", data={"call_id": "call_main_1"})
        await _log(company=alpha, kind="twilio.numbers_pulled", message="company-wide line")
        received = await _lines(communicator)
        await communicator.disconnect()
        return received

    assert run(scenario()) == ["main call line", "company-wide line"]


def test_filters_sent_on_the_socket_narrow_the_live_lines(two_companies):
    alpha = two_companies["alpha"]
    owner = make_member(alpha, "owner")

    async def scenario():
        communicator, _ = await _open(owner, alpha.pk)
        assert (await communicator.receive_json_from(timeout=5))["type"] == "ready"
        await communicator.send_json_to({"type": "filter", "kind": "webhook", "level": "", "agent": str(
            two_companies["backup"].pk), "call_id": ""})
        assert await communicator.receive_json_from(timeout=5) == {"type": "filter", "ok": True}
        await _log(company=alpha, kind="webhook.received", message="main", data={"call_id": "call_main_1"})
        await _log(company=alpha, kind="appointment", message="backup appointment", data={"call_id": "call_backup_1"})
        await _log(company=alpha, kind="webhook.processed", message="backup webhook", data={"call_id": "call_backup_1"})
        await _log(company=alpha, kind="webhooks.other", message="not a child of webhook",
                   data={"call_id": "call_backup_1"})
        received = await _lines(communicator)
        await communicator.send_json_to({"type": "filter", "level": "loud"})
        error = await communicator.receive_json_from(timeout=5)
        await communicator.send_json_to({"type": "filter", "agent": str(two_companies["other"].pk)})
        other_company_agent = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return received, error, other_company_agent

    received, error, other_company_agent = run(scenario())
    assert received == ["backup webhook"]
    assert error == {"type": "error", "error": {"code": "bad_filter",
                                                "message": "level must be one of info, warning, error."}}
    assert other_company_agent["error"]["code"] == "bad_filter"

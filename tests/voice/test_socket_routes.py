"""WebSocket paths over a real socket (issue 11, item 3): the paths Retell builds from a
configured URL with a trailing slash work; a trailing dot, an extra segment and any
unrouted path are refused at the handshake (403), never a 500, and no line at ERROR or
with the token is logged."""

import asyncio
import logging
import socket
import uuid
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from retell_config.models import Agent
from tests.factories import make_company
from tests.voice.retell_client import RetellClient

pytestmark = pytest.mark.e2e

FUZZ = hypothesis_settings(max_examples=80, deadline=None, database=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def agent(live_db):
    company = make_company("Bright Smile Dental", slug="bright-smile", timezone="America/New_York", language="en")
    return Agent.objects.create(company=company, agent_id="agent_dental001", name="Sophie", language="en-US",
                                begin_message="Bright Smile Dental, this is Sophie.")


@pytest.fixture
def server_log():
    """Every record of the ASGI server's and the application's loggers, whatever their propagation."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # fills exc_text, where a traceback would carry the path
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "django", "voice", "config")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


def handshake(server: str, target: str) -> tuple[int, bytes]:
    """Send a WebSocket upgrade for the raw request target; the status and what followed within a moment."""
    parts = urlsplit(server)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode("ascii"))
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        status = int(received.split(b" ", 2)[1])
        if status == 101 and b'"config"' not in received:
            sock.settimeout(5)
            while b'"config"' not in received:  # the opening frame of a working call
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        return status, received


def assert_nothing_logged_at_error_or_with(records, token: str) -> None:
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        assert record.levelno < logging.ERROR, text
        assert token not in text, text


def call_id() -> str:
    return "call_" + uuid.uuid4().hex


def test_a_configured_url_with_a_trailing_slash_reaches_the_agents_call(asgi_server, agent, server_log):
    async def scenario():
        client = await RetellClient.open(f"{asgi_server}/retell-llm/{agent.socket_token}//{call_id()}")
        config, begin = await client.opening()
        await client.close()
        return config, begin

    config, begin = asyncio.run(asyncio.wait_for(scenario(), 30))

    assert config["response_type"] == "config"
    assert begin["content"] == "Bright Smile Dental, this is Sophie."
    assert_nothing_logged_at_error_or_with(server_log, agent.socket_token)


@pytest.mark.parametrize("path", [
    "/retell-llm/{token}./{call_id}",          # the configured URL ended with a dot
    "/retell-llm/{token}/extra/{call_id}",     # ... or with an extra segment
    "/retell-llm/{token}/{call_id}/more",
    "/retell-llm/{token}%00/{call_id}",
    "/retell-llm/",
    "/retell-llm",
    "/llm-websocket/{call_id}",
    "/",
    "/admin/",
])
def test_an_unrouted_path_is_refused_at_the_handshake_without_an_error_or_the_token_in_the_log(
        asgi_server, agent, server_log, path):
    status, _ = handshake(asgi_server, path.format(token=agent.socket_token, call_id=call_id()))

    assert status == 403
    assert_nothing_logged_at_error_or_with(server_log, agent.socket_token)


# --- fuzz ------------------------------------------------------------------------------------------------

@st.composite
def paths(draw, token: str):
    segment = st.one_of(
        st.just(token), st.just(token + "."), st.just(token[:-1]), st.just(""), st.just("."), st.just(".."),
        st.from_regex(r"\Acall_[A-Za-z0-9_-]{1,40}\Z"),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
        st.sampled_from(["%00", "%FF", "%2F", "%2e", "%", "%zz"]),
    )
    if draw(st.booleans()):  # as Retell builds it from a configured URL, with what a person may add
        configured = draw(st.sampled_from([f"/retell-llm/{token}", "/retell-llm"])) + draw(
            st.sampled_from(["", "/", "//", ".", "/extra", "?x=1", "%20"]))
        path = configured + "/" + draw(st.one_of(st.from_regex(r"\Acall_[A-Za-z0-9_-]{1,40}\Z"), segment))
    else:
        prefix = draw(st.sampled_from(["/retell-llm/", "//retell-llm/", "/retell-llm", "/", "/api/", "/twilio/"]))
        path = prefix + "/".join(draw(st.lists(segment, min_size=0, max_size=4)))
    if draw(st.booleans()):
        path += "/"
    # Kept as sent: percent escapes the strategy wrote, everything else escaped as a client would.
    return quote(path, safe="/%?=")


def test_any_path_is_a_clean_refusal_or_a_working_call(asgi_server, agent, server_log):
    token = agent.socket_token

    @FUZZ
    @given(target=paths(token))
    def check(target):
        status, received = handshake(asgi_server, target)

        assert status in (101, 400, 403, 404), (target, received[:200])
        if status == 101:
            assert b'"config"' in received, target  # the call answers as a call does

    check()
    assert_nothing_logged_at_error_or_with(server_log, token)

"""The running ASGI application on a loopback port, for the socket conformance suite."""

import threading
import time

import pytest

from tests.fakes import free_port


@pytest.fixture(scope="session")
def asgi_server():
    """config.asgi:application served by uvicorn in a thread (the test database and Redis)."""
    import uvicorn

    from config.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off",
                                           ws="websockets-sansio", log_level="warning"))
    thread = threading.Thread(target=server.run, name="asgi-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI test server did not start")
        time.sleep(0.02)
    yield f"ws://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_db(transactional_db):
    """The database of tests that drive the running server. Before it is flushed, the
    server's calls have stopped and written their turn records: otherwise that work
    would still be writing while the tables are truncated."""
    from voice.retell_session import sessions_running

    yield
    deadline = time.monotonic() + 15
    while sessions_running() and time.monotonic() < deadline:
        time.sleep(0.05)

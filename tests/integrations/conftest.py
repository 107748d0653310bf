"""The running ASGI application (config.asgi) on a loopback port, for the MCP client and the limits."""

import threading
import time

import pytest

from tests.fakes import free_port
# The Retell configuration's fixtures: the loopback Retell API, eager Celery, fresh circuits.
from tests.retell_config.conftest import _fresh_circuits, eager_celery, fake_retell, retell_agents  # noqa: F401


@pytest.fixture(scope="session")
def http_server():
    """config.asgi:application under uvicorn in a thread (the test database and Redis); its base URL."""
    import uvicorn

    from config.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off",
                                           ws="websockets-sansio", log_level="warning"))
    thread = threading.Thread(target=server.run, name="asgi-integrations-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)

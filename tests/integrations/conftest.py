"""The running ASGI application (config.asgi) on a loopback port, for the MCP client and the limits."""

import pytest

from tests.asgi_server import running_application
# The Retell configuration's fixtures: the loopback Retell API, eager Celery, fresh circuits.
from tests.retell_config.conftest import _fresh_circuits, eager_celery, fake_retell, retell_agents  # noqa: F401


@pytest.fixture(scope="session")
def http_server():
    """config.asgi:application under uvicorn in a thread (the test database and Redis); its base URL."""
    with running_application("asgi-integrations-server") as port:
        yield f"http://127.0.0.1:{port}"

"""config.asgi:application served by uvicorn in a thread on a loopback port, for tests that need a real server."""

import contextlib
import threading
import time

from tests.fakes import free_port


@contextlib.contextmanager
def running_application(thread_name: str):
    """Serve the application (the test database and Redis) until the block ends; yields its port."""
    import uvicorn

    from config.asgi import application

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off",
                                           ws="websockets-sansio", log_level="warning"))
    thread = threading.Thread(target=server.run, name=thread_name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""`make run`'s server: it serves on SQLite with no other servers, keeps socket tokens out of
its log, and stops cleanly on Ctrl-C."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.fakes import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc tells them apart.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def _an_agent_token(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT socket_token FROM retell_config_agent ORDER BY id LIMIT 1").fetchone()[0]


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(VOICEDESK_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               VOICEDESK_DEMO_PASSWORD="embedded-test-pass", PYTHONUNBUFFERED="1")
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(manage + command, env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    return env, manage


def _ctrl_c(server) -> None:
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(server.pid, signal.SIGINT)


def _terminate_parent_only(server) -> None:
    # kill, systemd or a container stop signal the supervisor alone; it must stop its children.
    server.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("stop", [_ctrl_c, _terminate_parent_only], ids=["ctrl-c", "sigterm-to-parent"])
def test_embedded_run_serves_health_and_stopping_it_stops_everything(embedded_env, tmp_path, stop):
    env, manage = embedded_env
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    server = subprocess.Popen(manage + ["serve_embedded", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    body = json.load(response)
            except OSError:
                time.sleep(0.5)
        assert body is not None, (tmp_path / "serve.log").read_text()[-3000:]
        assert body["status"] == "ok"
        assert {n: c["backend"] for n, c in body["checks"].items()} == {
            "database": "sqlite", "cache": "locmem", "broker": "filesystem"}

        # A live-call socket opens with the agent's token in its path; no log line shows it.
        token = _an_agent_token(tmp_path / "db.sqlite3")
        with connect(f"ws://127.0.0.1:{port}/retell-llm/{token}/call_embedded_1", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["response_type"] == "config"
        time.sleep(0.5)

        log.flush()
        served = (tmp_path / "serve.log").read_text()
        assert "/retell-llm/[agent-token]/call_embedded_1" in served
        assert token not in served
        pids = re.search(r"web pid (\d+), worker pid (\d+)", (tmp_path / "serve.log").read_text())
        assert pids, (tmp_path / "serve.log").read_text()[-3000:]
        children = [int(pid) for pid in pids.groups()]

        stop(server)
        server.wait(timeout=30)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_the_retell_commands_print_only_their_own_output(embedded_env):
    """sync_agents and deploy_functions on the embedded defaults (no REDIS_URL: the filesystem
    broker) against Retell: their lines, and nothing logged by the libraries under them."""
    from tests.fakes.retell_api import FakeRetellAPI

    env, manage = embedded_env
    fake = FakeRetellAPI(api_keys={"retell-embedded-key"}).start()
    try:
        llm = fake.add_llm("llm_demo")
        for agent_id in ("agent_abc123", "agent_xyz789", "agent_dental001"):
            fake.add_agent(agent_id, llm_id=llm["llm_id"])
        env = {**env, "RETELL_BASE_URL": fake.base_url, "RETELL_API_KEY": "retell-embedded-key"}
        outputs = {command: subprocess.run(manage + [command], env=env, cwd=ROOT, capture_output=True, text=True,
                                           timeout=120) for command in ("sync_agents", "deploy_functions")}
    finally:
        fake.stop()

    for command, done in outputs.items():
        assert "AskProAI Demo Company" in done.stdout and "Bright Smile Dental" in done.stdout, (command, done)
        assert re.search(r"#\d+: (succeeded|partial)", done.stdout), (command, done.stdout)
        assert done.stderr == "", (command, done.stderr)


def test_serve_embedded_says_it_is_running_only_once_the_server_answers(embedded_env, tmp_path):
    env, manage = embedded_env
    port = free_port()
    server = subprocess.Popen(manage + ["serve_embedded", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        for line in server.stdout:
            if "VoiceDesk is running at" in line:
                break
        else:
            pytest.fail("serve_embedded ended without saying it is running")
        # Asked the moment the line is printed: the server must already answer.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        assert f"http://127.0.0.1:{port}/admin/" in line
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

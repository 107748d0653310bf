"""Benchmark: signed Retell call_ended webhooks against the server in production configuration.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/voicedesk_bench \
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/webhook_bench.py [--server daphne|uvicorn|both]

It creates and migrates the database if needed, seeds a company and agent, starts the
ASGI server (DEBUG off, PostgreSQL, Redis cache, channel layer and Celery broker, with
BENCH_TRIVIAL_VIEW=true so /bench/noop exists), pre-signs the requests (unique call
ids, ~20 KB transcripts; a psycopg connection pool of 32 unless DATABASE_POOL_MAX_SIZE
says otherwise, as the production web process uses), and drives 64 keep-alive connections from an asyncio client:
first at /bench/noop (a 204 through the same middleware), then at /api/retell/webhook.
It prints requests/s and p50/p99 latency for both and the throughput ratio. No Celery
worker runs during the measurement (the request path never waits for one); the
queued processing tasks are purged afterwards. This is a benchmark, not a test.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
API_KEY = "key_webhook_bench_0123456789abcdef"
AGENT_ID = "agent_bench"


def transcript(target_bytes: int = 20_000) -> tuple[str, list]:
    agent = "Guten Tag, Praxis Sonnenschein, Sie sprechen mit der digitalen Rezeption. Wie kann ich helfen?"
    user = "Ich hätte gern einen Termin für eine Kontrolle, am liebsten nächste Woche Dienstag vormittags."
    turns, text = [], []
    while len(json.dumps(turns)) + len("\n".join(text)) < target_bytes:
        i = len(turns)
        role, content = ("agent", agent) if i % 2 == 0 else ("user", user)
        turns.append({"role": role, "content": content,
                      "words": [{"word": w, "start": round(i * 5 + j * .3, 2), "end": round(i * 5 + j * .3 + .25, 2)}
                                for j, w in enumerate(content.split()[:6])]})
        text.append(f"{role.title()}: {content}")
    return "\n".join(text), turns


def build_requests(count: int, path: str, host: str) -> list[bytes]:
    from voice.protocols.signatures import retell_sign

    text, turns = transcript()
    now = int(time.time() * 1000)
    out = []
    for n in range(count):
        call_id = f"call_bench_{now}_{n}"
        body = json.dumps({"event": "call_ended", "call": {
            "call_type": "phone_call", "from_number": "+4915112345678", "to_number": "+493083793369",
            "direction": "inbound", "call_id": call_id, "agent_id": AGENT_ID, "agent_version": 1,
            "call_status": "ended", "start_timestamp": now - 200_000, "end_timestamp": now - 20_000,
            "duration_ms": 180_000, "disconnection_reason": "user_hangup", "transcript": text,
            "transcript_object": turns, "metadata": {}, "opt_out_sensitive_data_storage": False}},
            separators=(",", ":"), ensure_ascii=False).encode()
        signature = retell_sign(body, API_KEY, now)
        out.append((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nX-Retell-Signature: {signature}\r\n\r\n").encode() + body)
    return out


async def _connection(host: str, port: int, requests, latencies: list, statuses: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            code = status_line.split(b" ")[1].decode() if status_line else "closed"
            statuses[code] = statuses.get(code, 0) + 1
    finally:
        writer.close()


async def drive(host: str, port: int, requests: list[bytes], concurrency: int) -> dict:
    shared = iter(requests)
    latencies, statuses = [], {}
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, shared, latencies, statuses) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies), "statuses": statuses}


def prepare_database(env: dict) -> None:
    import psycopg

    url = urlsplit(env["DATABASE_URL"])
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    seed = (f"from tenants.models import Company; from retell_config.models import Agent\n"
            f"c, _ = Company.objects.get_or_create(slug='bench', defaults={{'name': 'Bench Praxis'}})\n"
            f"c.retell_api_key = '{API_KEY}'; c.save()\n"
            f"Agent.objects.get_or_create(agent_id='{AGENT_ID}', defaults={{'company': c, 'name': 'Bench'}})\n")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", seed], cwd=ROOT, env=env, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(kind: str, port: int, env: dict) -> subprocess.Popen:
    command = {
        "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        "uvicorn": [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                    "--port", str(port), "--no-access-log", "--log-level", "warning"],
        "uvicorn-2-workers": [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                              "--port", str(port), "--no-access-log", "--log-level", "warning", "--workers", "2"],
    }[kind]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{kind} did not start: {process.stderr.read().decode()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def line(label: str, r: dict) -> str:
    return (f"  {label:<22} {r['rps']:8.0f} req/s   p50 {r['p50']:6.1f} ms   p99 {r['p99']:6.1f} ms   "
            f"n={r['n']}  {r['statuses']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn", "uvicorn-2-workers", "both", "all"], default="both")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    options = parser.parse_args()

    env = {"DATABASE_POOL_MAX_SIZE": "32", **os.environ, "BENCH_TRIVIAL_VIEW": "true", "DJANGO_DEBUG": "false",
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    if "postgres" not in env.get("DATABASE_URL", "") or not env.get("REDIS_URL"):
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the benchmark runs the production configuration.")
    os.environ.update(env)
    prepare_database(env)
    import django

    django.setup()
    servers = {"both": ["daphne", "uvicorn"], "all": ["daphne", "uvicorn", "uvicorn-2-workers"]}.get(
        options.server, [options.server])
    print(f"{options.requests} requests after {options.warmup} warm-up, {options.concurrency} connections, "
          f"~{len(build_requests(1, '/x', 'h')[0]) // 1000} KB each; {os.cpu_count()} CPUs shared by client, "
          f"server, PostgreSQL and Redis")
    for kind in servers:
        port = free_port()
        host = f"127.0.0.1:{port}"
        process = start_server(kind, port, env)
        try:
            results = {}
            for label, path in (("trivial 204 view", "/bench/noop"), ("call_ended webhook", "/api/retell/webhook")):
                asyncio.run(drive("127.0.0.1", port, build_requests(options.warmup, path, host), options.concurrency))
                results[label] = asyncio.run(drive("127.0.0.1", port, build_requests(options.requests, path, host),
                                                   options.concurrency))
        finally:
            stop(process)
        trivial, webhook = results["trivial 204 view"], results["call_ended webhook"]
        print(f"{kind}:")
        print(line("trivial 204 view", trivial))
        print(line("call_ended webhook", webhook))
        print(f"  throughput ratio webhook/trivial: {webhook['rps'] / trivial['rps']:.2f}  "
              f"(goal >= 0.5; webhook p99 goal < 50 ms)")
    subprocess.run([sys.executable, "-m", "celery", "-A", "config", "purge", "-f"], cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    main()

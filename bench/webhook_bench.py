"""Benchmark: signed Retell call_ended webhooks against the server in production configuration.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/voicedesk_bench \
    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/webhook_bench.py [--server uvicorn|daphne|both|all]

It creates and migrates the database if needed, seeds a company and agent, starts the
ASGI server (DEBUG off, PostgreSQL, Redis cache, channel layer and Celery broker, a
psycopg connection pool of 32 unless DATABASE_POOL_MAX_SIZE says otherwise, and
BENCH_TRIVIAL_VIEW=true so /bench/noop exists) and pre-signs the requests (unique call
ids, ~20 KB transcripts). Then, from an asyncio client on 64 keep-alive connections:
- closed loop, in interleaved rounds: /bench/noop (a 204 through the same middleware),
  then /api/retell/webhook, each round printing requests/s, p50/p99 and the throughput
  ratio, and the median ratio of the rounds;
- open loop: both at a fixed offered rate (--rate), latency counted from when each
  request was due, which is the latency a sender sees at that load.
No Celery worker runs during the measurement (the request path never waits for one);
the queued processing tasks are purged afterwards. This is a benchmark, not a test.
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


async def _exchange(reader, writer, request: bytes) -> str:
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
    return status_line.split(b" ")[1].decode() if status_line else "closed"


def _summary(latencies: list, statuses: dict, elapsed: float) -> dict:
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies), "statuses": statuses}


async def drive(host: str, port: int, requests: list[bytes], concurrency: int) -> dict:
    """Closed loop: each connection sends its next request as soon as the last is answered."""
    shared = iter(requests)
    latencies, statuses = [], {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in shared:
                started = time.perf_counter()
                code = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                statuses[code] = statuses.get(code, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return _summary(latencies, statuses, time.perf_counter() - started)


async def drive_at_rate(host: str, port: int, requests: list[bytes], concurrency: int, rate: float) -> dict:
    """Open loop: request i is due at i / rate seconds, sent on the first free connection, and its
    latency counts from when it was due (so a slow answer cannot hide the requests queued behind it)."""
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(concurrency):
        free.put_nowait(await asyncio.open_connection(host, port))
    latencies, statuses, tasks = [], {}, []
    started = time.perf_counter()

    async def send(request: bytes, due: float) -> None:
        reader, writer = await free.get()
        try:
            code = await _exchange(reader, writer, request)
        finally:
            free.put_nowait((reader, writer))
        latencies.append(time.perf_counter() - due)
        statuses[code] = statuses.get(code, 0) + 1

    for i, request in enumerate(requests):
        due = started + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(send(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not free.empty():
        free.get_nowait()[1].close()
    return _summary(latencies, statuses, elapsed)


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


PATHS = (("trivial 204 view", "/bench/noop"), ("call_ended webhook", "/api/retell/webhook"))


def measure(kind: str, env: dict, options) -> None:
    port = free_port()
    host = f"127.0.0.1:{port}"
    process = start_server(kind, port, env)
    rounds: list[dict] = []
    try:
        for _, path in PATHS:
            asyncio.run(drive("127.0.0.1", port, build_requests(options.warmup, path, host), options.concurrency))
        # Interleaved, so that a slow spell of the shared machine falls on both sides of a ratio.
        for _ in range(options.rounds):
            rounds.append({label: asyncio.run(drive("127.0.0.1", port, build_requests(options.requests, path, host),
                                                    options.concurrency)) for label, path in PATHS})
        at_rate = {label: asyncio.run(drive_at_rate("127.0.0.1", port, build_requests(options.rate_requests, path, host),
                                                    options.concurrency, options.rate)) for label, path in PATHS}
    finally:
        stop(process)
    print(f"{kind}:")
    for number, result in enumerate(rounds, 1):
        trivial, webhook = result["trivial 204 view"], result["call_ended webhook"]
        print(f" round {number}")
        print(line("trivial 204 view", trivial))
        print(line("call_ended webhook", webhook))
        print(f"  throughput ratio webhook/trivial: {webhook['rps'] / trivial['rps']:.2f}")
    ratios = sorted(r["call_ended webhook"]["rps"] / r["trivial 204 view"]["rps"] for r in rounds)
    p99s = sorted(r["call_ended webhook"]["p99"] for r in rounds)
    print(f" median of {len(rounds)} rounds: ratio {statistics.median(ratios):.2f} (goal >= 0.5), "
          f"webhook p99 {statistics.median(p99s):.0f} ms at {options.concurrency} busy connections")
    print(f" open loop, {options.rate:.0f} requests/s offered on {options.concurrency} connections "
          f"(latency from when each request was due):")
    for label, _ in PATHS:
        print(line(label, at_rate[label]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn", "uvicorn-2-workers", "both", "all"],
                        default="uvicorn")
    parser.add_argument("--requests", type=int, default=2000, help="per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100.0, help="offered requests/s of the open-loop phase")
    parser.add_argument("--rate-requests", type=int, default=1000)
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
    print(f"{options.rounds} rounds of {options.requests} requests per side after {options.warmup} warm-up, "
          f"{options.concurrency} connections, ~{len(build_requests(1, '/x', 'h')[0]) // 1000} KB each; "
          f"{os.cpu_count()} CPUs shared by client, server, PostgreSQL and Redis")
    for kind in servers:
        measure(kind, env, options)
    subprocess.run([sys.executable, "-m", "celery", "-A", "config", "purge", "-f"], cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    main()

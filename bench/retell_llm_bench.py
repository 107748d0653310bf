"""How fast the Retell LLM socket answers under concurrent calls (not a test: prints figures).

    .venv/bin/python bench/retell_llm_bench.py            # N = 1, 10, 50, 100; uvicorn, daphne, bare

N simulated Retell calls at once (voice.simulator.SimulatedCall: config, call_details,
ping_pong, update_only, response_required with the growing transcript), each 20 turns
with the embedded receptionist, against the server in its production configuration:
PostgreSQL, Redis as cache and channel layer, DJANGO_DEBUG off, one server process
started by this script with the command docker-compose.yml runs (uvicorn) and, for
comparison, under daphne. The same calls go to a bare `websockets` server (also a
process of its own) that answers each response_required with a canned chunk: that is
the floor (loopback, the client, JSON), and the ratio says what the application adds.

Figures: p50 and p99 from response_required written by the client to the first
response frame read (and to content_complete), per server and N. The goal: p99 under
25 ms at 50 calls and within 3x of the bare server.

The turns are a realistic call, English or German by the company: small talk and
questions (hours, address, prices), an availability check, a booking with a
correction, a move and a cancellation (five turns run an appointment function
against PostgreSQL), and a goodbye. Each caller waits --think seconds (0.5x to 1.5x,
seeded) between turns, about five times faster than people speak; --think 0 is a
stress test rather than a call.

The database is a bench database of its own (default voicedesk_retell_bench on the
local PostgreSQL; its name must contain "bench"): created if missing and migrated.
Each run makes its own companies and agents (open every day, two services each).
The client is one asyncio process; its own event-loop lag is measured and printed,
so it can be told apart from the server's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/voicedesk_retell_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
EVERY_DAY = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
WEEKDAYS = {"en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
            "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]}
NAMES = ["Anna Schmidt", "Tom Baker", "Eva Klein", "Hans Müller", "Maria Lopez", "Jonas Weber", "Lea Fischer",
         "Paul Wagner"]


# --- the bare server: the floor -------------------------------------------------------------------------

def serve_bare(port: int) -> None:
    """A plain websockets server speaking our side of the protocol with canned answers."""
    from websockets.asyncio.server import serve

    async def handler(ws):
        await ws.send(json.dumps({"response_type": "config", "config": {
            "auto_reconnect": True, "call_details": True, "transcript_with_tool_calls": True}}))
        await ws.send(json.dumps({"response_type": "response", "response_id": 0, "content": "Hello!",
                                  "content_complete": True}))
        async for data in ws:
            frame = json.loads(data)
            kind = frame.get("interaction_type")
            if kind == "ping_pong":
                await ws.send(json.dumps({"response_type": "ping_pong", "timestamp": int(time.time() * 1000)}))
            elif kind in ("response_required", "reminder_required"):
                response_id = frame["response_id"]
                await ws.send(json.dumps({"response_type": "response", "response_id": response_id,
                                          "content": "Of course, one moment.", "content_complete": False}))
                await ws.send(json.dumps({"response_type": "response", "response_id": response_id,
                                          "content": "", "content_complete": True}))

    async def main():
        async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
            await asyncio.Future()

    asyncio.run(main())


# --- the bench database ------------------------------------------------------------------------------------

def prepare_database(database_url: str) -> None:
    """Create the bench database if it is missing (only a database whose name says bench) and migrate it."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"Refusing to use database {name!r}: the bench database's name must contain 'bench'.")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class CallPlan:
    url_base: str            # the agent's socket URL without the call id, on the server under test
    token: str
    agent_id: str
    language: str
    from_number: str
    slot: int                # the call's own slots: never taken by another call of the same company


@dataclass
class Practice:
    agent_id: str
    token: str
    language: str
    calls: int = 0


def make_practices(count: int, tag: str) -> list[Practice]:
    """`count` companies with an agent each (half English, half German), open every day."""
    from appointments.services import service_ensure
    from audit.actor import Actor
    from retell_config.services import agent_update, agent_upsert
    from tenants.services import company_create

    actor = Actor.system("retell llm bench")
    practices = []
    for i in range(count):
        language = "en" if i % 2 == 0 else "de"
        company = company_create(
            actor=actor, name=f"Bench Practice {tag} {i}", slug=f"bench-{tag}-{i}",
            timezone="America/New_York" if language == "en" else "Europe/Berlin", language=language,
            phone="+12125550134" if language == "en" else "+493083793369",
            address="200 Park Avenue South, New York" if language == "en" else "Friedrichstraße 100, 10117 Berlin",
            opening_hours=EVERY_DAY)
        for name, price in ((("Cleaning", 120), ("Check-up", 80)) if language == "en"
                            else (("Zahnreinigung", 90), ("Kontrolluntersuchung", 50))):
            service_ensure(actor=actor, company=company, name=name, duration_minutes=30, price=price)
        agent, _ = agent_upsert(actor=actor, company=company, agent_id=f"agent_bench_{tag}_{i}", name="Sophie")
        greeting = ("Bench Practice, this is Sophie. How can I help?" if language == "en"
                    else "Praxis, guten Tag. Wie kann ich helfen?")
        agent, _, _ = agent_update(actor=actor, agent=agent, fields={
            "language": "en-US" if language == "en" else "de-DE", "begin_message": greeting}, push=False)
        practices.append(Practice(agent.agent_id, agent.socket_token, language))
    return practices


def plan_calls(practices: list[Practice], count: int, base: str, serial: list[int]) -> list[CallPlan]:
    plans = []
    for i in range(count):
        practice = practices[i % len(practices)]
        serial[0] += 1
        number = (f"+1212555{1000 + serial[0] % 9000:04d}" if practice.language == "en"
                  else f"+49151{20000000 + serial[0]:08d}")
        plans.append(CallPlan(f"{base}/retell-llm/{practice.token}", practice.token, practice.agent_id,
                              practice.language, number, practice.calls))
        practice.calls += 1
    return plans


# --- the call -------------------------------------------------------------------------------------------------

def call_script(plan: CallPlan) -> list[str]:
    """Twenty caller lines: questions, availability, a booking with a correction, a move, a cancellation."""
    lang = plan.language
    # Two slots per call, on a grid of 7 weekdays x 9 hours: the booking's and the move's.
    book_day, book_hour = WEEKDAYS[lang][(2 * plan.slot) % 7], 9 + ((2 * plan.slot) // 7) % 9
    move_day, move_hour = WEEKDAYS[lang][(2 * plan.slot + 1) % 7], 9 + ((2 * plan.slot + 1) // 7) % 9
    name = NAMES[plan.slot % len(NAMES)]
    if lang == "en":
        return [
            "Hi there", "What are your opening hours?", "Where are you located?", "How much is a cleaning?",
            f"Do you have anything free on {book_day}?", "Yes, at 8 am please", "A cleaning",
            f"My name is {name}", f"No, at {_en_hour(book_hour)} instead", "Yes please",
            "What does a check-up cost?", "Actually, I need to move my appointment",
            f"To {move_day} at {_en_hour(move_hour)}", "Yes, that's right", "Are you open on Saturday?",
            "Sorry, one more thing", "Hmm, I think I'd rather cancel my appointment", "Yes", "What's your address again?",
            "No, that's all, goodbye",
        ]
    return [
        "Hallo", "Wie sind Ihre Öffnungszeiten?", "Wo finde ich Sie?", "Was kostet eine Zahnreinigung?",
        f"Haben Sie am {book_day} noch etwas frei?", "Ja, um 8 Uhr bitte", "Eine Zahnreinigung",
        f"Mein Name ist {name}", f"Nein, lieber um {book_hour} Uhr", "Ja, bitte", "Was kostet eine Kontrolle?",
        "Ich muss meinen Termin doch verschieben", f"Auf {move_day} um {move_hour} Uhr", "Ja, passt",
        "Haben Sie am Samstag geöffnet?", "Äh, noch eine Sache", "Ach, ich möchte den Termin lieber absagen", "Ja",
        "Wie war noch mal Ihre Adresse?", "Nein danke, auf Wiederhören",
    ]


def _en_hour(hour: int) -> str:
    return f"{hour % 12 or 12} {'am' if hour < 12 else 'pm'}"


@dataclass
class CallResult:
    first: list[float] = field(default_factory=list)
    complete: list[float] = field(default_factory=list)
    tool_first: list[float] = field(default_factory=list)
    tools: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    stale: int = 0


async def run_call(plan: CallPlan, turns: int, think: float, rng: random.Random, started: asyncio.Event,
                   bare: bool) -> CallResult:
    from voice.simulator import SimulatedCall, new_call_id

    result = CallResult()
    call_id = new_call_id()
    call = SimulatedCall(f"{plan.url_base}/{call_id}", call_id=call_id, agent_id=plan.agent_id,
                         from_number=plan.from_number, to_number="+12125550134")
    try:
        await call.connect(timeout=30)
        await started.wait()
        await asyncio.sleep(rng.uniform(0, think or 0))
        for line in call_script(plan)[:turns]:
            turn = await call.say(line, timeout=30)
            result.first.append(turn.first_chunk_ms)
            result.complete.append(turn.complete_ms)
            for tool in turn.tool_calls:
                result.tools.setdefault(tool.name, [0, 0])[0 if tool.successful else 1] += 1
            if turn.tool_calls:
                result.tool_first.append(turn.first_chunk_ms)
            if turn.end_call:
                break
            if think:
                await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
        result.stale = call.stale_frames
    except Exception as error:  # a failed call is counted and said, the others go on
        result.failures.append(f"{type(error).__name__}: {error}")
    finally:
        await call.hang_up()
    return result


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late the client's own event loop wakes up (its overhead shows here)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        planned = loop.time() + 0.005
        await asyncio.sleep(0.005)
        lags.append((loop.time() - planned) * 1000)


async def run_round(plans: list[CallPlan], turns: int, think: float, seed: int, bare: bool) -> tuple[CallResult, list]:
    rng = random.Random(seed)
    started, stop, lags = asyncio.Event(), asyncio.Event(), []
    tasks = [asyncio.ensure_future(run_call(plan, turns, think, random.Random(rng.random()), started, bare))
             for plan in plans]
    await asyncio.sleep(0.2)  # the calls connect (and are greeted) before the turns start
    lag_task = asyncio.ensure_future(loop_lag(stop, lags))
    started.set()
    results = await asyncio.gather(*tasks)
    stop.set()
    await lag_task
    total = CallResult()
    for r in results:
        total.first += r.first
        total.complete += r.complete
        total.tool_first += r.tool_first
        total.failures += r.failures
        total.stale += r.stale
        for name, (ok, refused) in r.tools.items():
            counts = total.tools.setdefault(name, [0, 0])
            counts[0] += ok
            counts[1] += refused
    return total, lags


# --- servers -------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER_COMMANDS = {
    # As docker-compose.yml and serve_embedded run it.
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--no-server-header"],
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                            "config.asgi:application"],
    "bare": lambda port: [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)],
}


class Server:
    def __init__(self, kind: str, env: dict, log_dir: Path, wrap: list[str] = ()) -> None:
        self.kind, self.port = kind, free_port()
        self.log = open(log_dir / f"{kind}.log", "w+")
        command = SERVER_COMMANDS[kind](self.port)
        self.wrapped = bool(wrap) and kind != "bare"
        if self.wrapped:
            command = [part.replace("{server}", kind) for part in wrap] + command
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.log.seek(0)
                    output = self.log.read()[-3000:]
                    self.stop()
                    sys.exit(f"{kind} did not start:\n{output}")
                time.sleep(0.1)
        self.url = f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if self.wrapped else signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- main ----------------------------------------------------------------------------------------------------

def fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,50,100", help="concurrent calls per round, comma-separated")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between a caller's turns")
    parser.add_argument("--servers", default="uvicorn,daphne", help="uvicorn and/or daphne (the bare server always)")
    parser.add_argument("--companies", type=int, default=20, help="companies (each with one agent) the calls use")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--wrap", default="", help="a command prefix for our servers, to profile them, e.g. "
                        "'py-spy record -o {server}.svg --' ({server} is uvicorn or daphne)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "DJANGO_DEBUG": "false",
           "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1"}
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    prepare_database(args.database_url)
    from voice.simulator import percentile

    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()] + ["bare"]
    tag = secrets.token_hex(3)
    practices = make_practices(args.companies, tag)
    print(f"{len(practices)} companies (half English, half German), {args.turns} turns per call, think "
          f"{args.think:g} s (0.5x-1.5x), database {urlsplit(args.database_url).path.lstrip('/')}, "
          f"Redis {urlsplit(args.redis_url).path or '/0'}, DJANGO_DEBUG=false")
    rows, serial = [], [0]
    with tempfile.TemporaryDirectory(prefix="retell-bench-") as logs:
        for kind in kinds:
            server = Server(kind, env, Path(logs), args.wrap.split())
            try:
                for size in sizes:
                    plans = plan_calls(practices, size, server.url, serial)
                    began = time.perf_counter()
                    total, lags = asyncio.run(run_round(plans, args.turns, args.think, args.seed + size,
                                                        kind == "bare"))
                    spent = time.perf_counter() - began
                    rows.append({
                        "server": kind, "calls": size, "turns": len(total.first), "seconds": spent,
                        "p50": percentile(total.first, 0.5), "p99": percentile(total.first, 0.99),
                        "max": max(total.first, default=None),
                        "p99_complete": percentile(total.complete, 0.99),
                        "tool_p50": percentile(total.tool_first, 0.5), "tool_p99": percentile(total.tool_first, 0.99),
                        "lag_p99": percentile(lags, 0.99), "failures": total.failures, "stale": total.stale,
                        "tools": total.tools})
                    row = rows[-1]
                    print(f"  {kind:<8} N={size:<4} {row['turns']:>5} turns in {spent:5.1f} s: first chunk p50 "
                          f"{fmt(row['p50'])} ms, p99 {fmt(row['p99'])} ms; failures {len(total.failures)}",
                          flush=True)
                    for failure in total.failures[:3]:
                        print(f"      {failure}")
            finally:
                server.stop()
    report(rows, sizes, kinds)


def report(rows: list[dict], sizes: list[int], kinds: list[str]) -> None:
    bare = {r["calls"]: r for r in rows if r["server"] == "bare"}
    print()
    print("response_required -> first chunk, ms (client-side, loopback); ratio = p99 / bare p99")
    header = (f"{'server':<8} {'calls':>5} {'turns':>6} {'p50':>7} {'p99':>7} {'max':>7} {'p99 done':>8} "
              f"{'tool p50':>8} {'tool p99':>8} {'bare p99':>8} {'ratio':>6} {'lag p99':>7} {'fail':>4}")
    print(header)
    print("-" * len(header))
    for r in rows:
        floor = bare.get(r["calls"], {}).get("p99")
        ratio = r["p99"] / floor if r["p99"] and floor else None
        print(f"{r['server']:<8} {r['calls']:>5} {r['turns']:>6} {fmt(r['p50']):>7} {fmt(r['p99']):>7} "
              f"{fmt(r['max']):>7} {fmt(r['p99_complete']):>8} {fmt(r['tool_p50']):>8} {fmt(r['tool_p99']):>8} "
              f"{fmt(floor):>8} {fmt(ratio):>6} {fmt(r['lag_p99']):>7} {len(r['failures']):>4}")
    tools = {}
    for r in rows:
        if r["server"] != "bare":
            for name, (ok, refused) in r["tools"].items():
                counts = tools.setdefault(name, [0, 0])
                counts[0] += ok
                counts[1] += refused
    if tools:
        print("appointment functions run: " + ", ".join(f"{name} {ok} ok/{refused} refused"
                                                        for name, (ok, refused) in sorted(tools.items())))
    print("'lag p99' is the client's own event-loop lag: what the client adds at most to a figure.")
    print()
    for kind in kinds:
        if kind == "bare":
            continue
        at50 = next((r for r in rows if r["server"] == kind and r["calls"] == 50), None)
        if at50 is None:
            continue
        floor = bare.get(50, {}).get("p99")
        ratio = at50["p99"] / floor if floor else None
        print(f"{kind}: p99 at 50 calls {fmt(at50['p99'])} ms (goal < 25: "
              f"{'met' if at50['p99'] < 25 else 'MISSED'}), {fmt(ratio)}x the bare server (goal <= 3: "
              f"{'met' if ratio is not None and ratio <= 3 else 'MISSED'})")
    servers = [k for k in kinds if k != "bare"]
    if len(servers) == 2:
        def score(kind):
            return sum(r["p99"] for r in rows if r["server"] == kind and r["p99"] is not None)
        faster, slower = sorted(servers, key=score)
        print(f"Faster: {faster} (sum of p99 over the rounds {score(faster):.1f} ms against {score(slower):.1f} ms "
              f"for {slower}).")


if __name__ == "__main__":
    main()

"""How many Twilio media streams one server process holds (not a test: prints figures).

    .venv/bin/python bench/twilio_media_bench.py                       # (a) and (b)
    .venv/bin/python bench/twilio_media_bench.py --sizes 50,100,200 --seconds 20 --offline-sizes 0

(a) The protocol and audio path alone. N streams at once against ONE uvicorn process (the
application as docker-compose.yml runs it, DJANGO_DEBUG off, PostgreSQL, Redis), each a call in
real time: a `media` frame every 20 ms for the whole call, the caller speaking 2 s (eSpeak NG's
voice, so the voice activity detection works for real) then quiet 4 s, over and over; the
agent answers in the quiet, its audio paced back and its marks echoed as Twilio plays them.
Speech-to-text and text-to-speech are instant stand-ins (below), put in through the speech
registry's settings (SPEECH_STT_PROVIDER / SPEECH_TTS_PROVIDER name their classes); the engine
is the embedded receptionist, which answers the stand-in's question without a tool. Measured in
the server: the time each inbound frame spends in TwilioCallSession.receive (decode, VAD, turn
logic), p50 and p99, and the server's CPU (cores busy). The same frames go to a bare
`websockets` echo server (a process of its own, the floor: loopback, JSON, one send per frame),
measured the same way; the ratio says what the session adds. Streams per core = N / cores busy,
reported where p99 < 5 ms (goal: at least 100).

(b) With the offline providers (pocketsphinx, eSpeak NG): their real-time factor per stream
(seconds of CPU per second of audio, measured here on the script's sentences), and live rounds
of N streams on the server with the real providers: the agent's audio falls behind when a
frame of an answer arrives after the caller's buffer ran dry (an audible gap); the largest N
without such gaps is what one process holds. The server's CPU use tells what one core holds.

The client is one asyncio process; its loop lag is printed so it can be told apart from the
server. The database must be a bench database (its name contains "bench").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice.speech.stt import CollectingStream, SpeechToText, Transcript  # noqa: E402
from voice.speech.tts import TextToSpeech  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/voicedesk_twilio_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
EVERY_DAY = {day: [["07:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NUMBER = "+12125550100"
QUESTION = "What are your opening hours?"
SPEAK_SECONDS, QUIET_SECONDS = 2.0, 4.0
STATS_PATH = "/__bench/frame-times"


# --- the stand-ins (built by the server's speech registry from their dotted paths) -----------------

class InstantSTT(SpeechToText):
    """Hears QUESTION at every commit, at once."""

    name = "instant"

    def stream(self, *, language: str, hints=None):
        async def transcribe(ulaw: bytes) -> Transcript:
            return Transcript(QUESTION, None, 0, self.name)
        return CollectingStream(transcribe)


class InstantTTS(TextToSpeech):
    """Every sentence is one second of a quiet tone, at once."""

    name = "instant"
    _second = bytes([0x7E, 0xFE] * 4000)

    async def synthesize_sentence(self, sentence: str, *, language: str, voice=None, previous_text: str = ""):
        yield self._second


# --- the server process: the application, timed per inbound frame ----------------------------------

_frame_ns: list[int] = []


def _timed_application():
    """config.asgi's application with TwilioCallSession.receive timed, and STATS_PATH answering the
    frame times gathered since the last ask (then forgotten)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.asgi import application
    from voice.twilio_session import TwilioCallSession

    receive = TwilioCallSession.receive

    async def timed(self, data):
        began = time.perf_counter_ns()
        await receive(self, data)
        _frame_ns.append(time.perf_counter_ns() - began)

    TwilioCallSession.receive = timed

    async def app(scope, receive_, send):
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            body = json.dumps(_frame_ns).encode()
            _frame_ns.clear()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await application(scope, receive_, send)
    return app


def __getattr__(name: str):
    # `uvicorn bench.twilio_media_bench:app` builds the timed application in the server process only.
    if name == "app":
        globals()["app"] = _timed_application()
        return globals()["app"]
    raise AttributeError(name)


def serve_bare(port: int) -> None:
    """A plain websockets server: each frame parsed and echoed, timed like the session's."""
    from websockets.asyncio.server import serve

    async def handler(ws):
        async for data in ws:
            began = time.perf_counter_ns()
            frame = json.loads(data)
            if frame.get("event") == "__stats":
                await ws.send(json.dumps(_frame_ns))
                _frame_ns.clear()
                continue
            await ws.send(data)
            _frame_ns.append(time.perf_counter_ns() - began)

    async def main():
        async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None, max_size=None):
            await asyncio.Future()

    asyncio.run(main())


# --- the calls -----------------------------------------------------------------------------------------

def make_practice(tag: str):
    from appointments.models import Service
    from retell_config.models import Agent
    from tenants.models import Company
    from voice.models import TwilioNumber

    company = Company.objects.create(name=f"Bench Dental {tag}", slug=f"bench-dental-{tag}", language="en",
                                     timezone="America/New_York", phone="+12125550134", opening_hours=EVERY_DAY,
                                     twilio_enabled=True)
    Service.objects.create(company=company, name="Check-up", duration_minutes=30)
    agent = Agent.objects.create(company=company, agent_id=f"agent_bench_{tag}", name="Sophie", language="en-US",
                                 begin_message="Bench Dental, this is Sophie. How can I help?")
    TwilioNumber.objects.filter(phone_number=NUMBER).delete()
    TwilioNumber.objects.create(company=company, phone_number=NUMBER, agent=agent)
    return agent


def mint_calls(agent, count: int, serial) -> list[tuple[str, str]]:
    """(call SID, stream token) for `count` calls, each with its Call row as the webhook makes it."""
    from voice.models import Call
    from voice.twilio_tokens import stream_token_mint

    calls = []
    for _ in range(count):
        sid = f"CA{next(serial):032x}"
        Call.objects.create(company=agent.company, call_id=sid, source=Call.Source.TWILIO, agent=agent,
                            from_number="+12125550199", to_number=NUMBER)
        calls.append((sid, stream_token_mint(company_id=agent.company_id, agent_id=agent.pk, call_sid=sid)))
    return calls


class Line:
    """One call's Twilio side: frames out every 20 ms, the server's audio played back in real time."""

    def __init__(self, url: str, call: tuple[str, str] | None, speech: bytes, seconds: float) -> None:
        self.url, self.call, self.speech, self.seconds = url, call, speech, seconds
        self.stream_sid = "MZ" + os.urandom(16).hex()
        self.buffer_end = 0.0
        self.answer_frames = 0
        self.gaps = 0                    # frames of an answer that came after the buffer ran dry
        self.lateness: list[float] = []  # the client's own lag at each tick
        self.received = 0
        self.failure = ""
        self.opened_at = 0.0
        self.greeted_at = 0.0            # the first audio back: the call has begun

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        try:
            async with connect(self.url, max_size=None, compression=None, ping_interval=None) as ws:
                self.ws = ws
                reader = asyncio.create_task(self._read())
                if self.call is not None:
                    sid, token = self.call
                    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                                              "start": {"streamSid": self.stream_sid, "callSid": sid,
                                                        "accountSid": "AC" + "0" * 32, "tracks": ["inbound"],
                                                        "customParameters": {"token": token},
                                                        "mediaFormat": {"encoding": "audio/x-mulaw",
                                                                        "sampleRate": 8000, "channels": 1}}}))
                await self._line()
                await ws.send(json.dumps({"event": "stop", "streamSid": self.stream_sid, "stop": {}}))
                reader.cancel()
        except Exception as error:  # a failed call is reported, not fatal to the run
            self.failure = f"{type(error).__name__}: {error}"

    async def _line(self) -> None:
        """Frames until `seconds` after the greeting began (the bare echo: `seconds` after opening)."""
        frames_speaking = int(SPEAK_SECONDS * 50)
        cycle = int((SPEAK_SECONDS + QUIET_SECONDS) * 50)
        silence = bytes([0xFF]) * 160
        started = self.opened_at = time.monotonic()
        for tick in itertools.count():
            now = time.monotonic()
            begun = self.greeted_at if self.call is not None else started
            if (begun and now - begun >= self.seconds) or now - started >= self.seconds + 30:
                return
            due = started + tick * 0.02
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            self.lateness.append(max(0.0, time.monotonic() - due))
            position = tick % cycle
            frame = self.speech[position * 160:(position + 1) * 160] if position < frames_speaking else silence
            frame = frame.ljust(160, b"\xff")
            await self.ws.send(json.dumps({"event": "media", "streamSid": self.stream_sid, "media": {
                "track": "inbound", "chunk": str(tick), "timestamp": str(tick * 20),
                "payload": base64.b64encode(frame).decode()}}))

    async def _read(self) -> None:
        pending: list[tuple[str, float]] = []
        async for message in self.ws:
            self.received += 1
            now = time.monotonic()
            frame = json.loads(message)
            event = frame.get("event")
            if event == "media" and self.call is not None:
                self.greeted_at = self.greeted_at or now
                size = len(frame["media"]["payload"]) * 3 // 4
                if self.answer_frames and now > self.buffer_end + 0.02:
                    self.gaps += 1
                self.answer_frames = self.answer_frames + 1 if now <= self.buffer_end + 0.5 else 1
                self.buffer_end = max(self.buffer_end, now) + size / 8000
            elif event == "mark":
                pending.append((frame["mark"]["name"], max(self.buffer_end, now)))
            elif event == "clear":
                self.buffer_end = now
            while pending and pending[0][1] <= now:
                name, _ = pending.pop(0)
                await self.ws.send(json.dumps({"event": "mark", "streamSid": self.stream_sid,
                                               "mark": {"name": name}}))


def percentile(values, share: float):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of process `pid` and its live children (the offline recogniser's workers)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        total += sum(cpu_seconds(int(child)) for child in children.read_text().split())
    return total


async def run_round(url: str, calls, speech: bytes, seconds: float, count: int) -> list[Line]:
    lines = [Line(url, calls[i] if calls else None, speech, seconds) for i in range(count)]
    tasks = []
    for line in lines:           # the calls arrive over half a second, not in one burst
        tasks.append(asyncio.create_task(line.run()))
        await asyncio.sleep(0.5 / count)
    await asyncio.gather(*tasks)
    return lines


async def bare_stats(url: str) -> list[int]:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"event": "__stats"}))
        return json.loads(await ws.recv())


def app_stats(port: int) -> list[int]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATS_PATH}", timeout=10) as answer:
        return json.loads(answer.read())


class Process:
    def __init__(self, command: list[str], env: dict, port: int, log: Path) -> None:
        import socket

        self.port, self.log = port, open(log, "w+")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.log.seek(0)
                    sys.exit(f"{command[2:4]} did not start:\n{self.log.read()[-3000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def uvicorn(port: int, app: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-server-header",
            "--ws", "websockets-sansio", "--log-level", "warning"]


def ms(values_ns, share) -> float | None:
    value = percentile(values_ns, share)
    return None if value is None else value / 1e6


def fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- main ------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25,50,100,150", help="(a) concurrent streams per round")
    parser.add_argument("--offline-sizes", default="2,4,8", help="(b) concurrent streams with the offline providers "
                                                                 "(0: skip the live rounds)")
    parser.add_argument("--seconds", type=float, default=18.0, help="length of each call in a round")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--logs", default="", help="keep the servers' logs in this folder")
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
    from bench.retell_llm_bench import free_port, prepare_database

    prepare_database(args.database_url)
    speech = asyncio.run(_caller_speech())
    agent = make_practice(os.urandom(3).hex())
    serial = itertools.count(int(time.time()) * 1000)
    print(f"each call {args.seconds:g} s: caller speaks {SPEAK_SECONDS:g} s, quiet {QUIET_SECONDS:g} s; one uvicorn "
          f"process; database {args.database_url.rsplit('/', 1)[-1]}; client and servers on this machine "
          f"({os.cpu_count()} CPUs)")

    with tempfile.TemporaryDirectory(prefix="twilio-bench-") as scratch:
        logs = Path(args.logs or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        rows = stream_rounds(args, env, logs, agent, serial, speech, free_port)
        offline_rows = offline_rounds(args, env, logs, agent, serial, speech, free_port)
    report(rows, offline_rows)


async def _caller_speech() -> bytes:
    from voice.speech.tts import EspeakTTS, VoiceSettings

    voice = VoiceSettings(voice_id="en-us+klatt6")
    spoken = b"".join([c async for c in EspeakTTS().synthesize(QUESTION, language="en", voice=voice)])
    return spoken[: int(SPEAK_SECONDS * 8000)].ljust(int(SPEAK_SECONDS * 8000), b"\xff")


def stream_rounds(args, env, logs: Path, agent, serial, speech, free_port) -> list[dict]:
    """(a): the session with instant stand-ins vs the bare echo, per N."""
    rows = []
    stand_ins = {**env, "SPEECH_STT_PROVIDER": "bench.twilio_media_bench.InstantSTT",
                 "SPEECH_TTS_PROVIDER": "bench.twilio_media_bench.InstantTTS"}
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        for kind in ("session", "bare"):
            port = free_port()
            command = (uvicorn(port, "bench.twilio_media_bench:app") if kind == "session"
                       else [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)])
            server = Process(command, stand_ins, port, logs / f"{kind}-{size}.log")
            try:
                calls = mint_calls(agent, size, serial) if kind == "session" else None
                url = f"ws://127.0.0.1:{port}/voice-agent/media-stream"
                cpu_before, wall_before = cpu_seconds(server.process.pid), time.monotonic()
                lines = asyncio.run(run_round(url, calls, speech, args.seconds, size))
                cores = (cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - wall_before)
                times = app_stats(port) if kind == "session" else asyncio.run(bare_stats(url))
            finally:
                server.stop()
            lateness = [x for line in lines for x in line.lateness]
            waits = [line.greeted_at - line.opened_at for line in lines if line.greeted_at]
            row = {"kind": kind, "streams": size, "frames": len(times), "p50": ms(times, 0.5), "p99": ms(times, 0.99),
                   "cores": cores, "answers": sum(line.received for line in lines),
                   "failures": [line.failure for line in lines if line.failure],
                   "client_lag_p99": percentile(lateness, 0.99) * 1000 if lateness else None,
                   "greeting_p50": percentile(waits, 0.5), "greeting_max": max(waits, default=None),
                   "greeted": len(waits)}
            rows.append(row)
            print(f"  (a) {kind:<7} N={size:<4} frames {row['frames']:>7}: in-server p50 {fmt(row['p50'], 3)} ms, "
                  f"p99 {fmt(row['p99'], 3)} ms; server CPU {row['cores']:.2f} cores; frames back {row['answers']}; "
                  f"client lag p99 {fmt(row['client_lag_p99'], 1)} ms; failures {len(row['failures'])}"
                  + (f"; greeting after p50 {fmt(row['greeting_p50'])} s, max {fmt(row['greeting_max'])} s "
                     f"({row['greeted']} of {size} calls)" if kind == "session" else ""), flush=True)
            for failure in row["failures"][:2]:
                print(f"      {failure}")
    return rows


def offline_rounds(args, env, logs: Path, agent, serial, speech, free_port) -> dict:
    """(b): the offline providers' real-time factors, then live rounds with them."""
    from voice.speech.rtf import stt_real_time_factor, tts_real_time_factor
    from voice.speech.stt import Audio, PocketsphinxSTT, SpeechHints
    from voice.speech.tts import EspeakTTS

    answers = ["Bench Dental, this is Sophie.", "How can I help?", "We're open every day from 7 am to 8 pm.",
               "Is there anything else I can help you with?"]
    hints = SpeechHints(services=("Check-up",), phrases=("Bench Dental",))
    stt = asyncio.run(stt_real_time_factor(PocketsphinxSTT(), [Audio.ulaw(speech.rstrip(b"\xff"))] * 3,
                                           language="en", hints=hints))
    tts = asyncio.run(tts_real_time_factor(EspeakTTS(), answers, language="en"))
    result = {"stt": stt, "tts": tts, "rounds": []}
    print(f"  (b) real-time factor per stream (CPU): speech-to-text {stt.cpu_factor:.3f}, text-to-speech "
          f"{tts.cpu_factor:.3f}", flush=True)
    for size in [int(s) for s in args.offline_sizes.split(",") if s.strip() and int(s) > 0]:
        port = free_port()
        server = Process(uvicorn(port, "bench.twilio_media_bench:app"),
                         {**env, "SPEECH_STT_PROVIDER": "offline", "SPEECH_TTS_PROVIDER": "offline"}, port,
                         logs / f"offline-{size}.log")
        try:
            calls = mint_calls(agent, size, serial)
            url = f"ws://127.0.0.1:{port}/voice-agent/media-stream"
            cpu_before, wall_before = cpu_seconds(server.process.pid), time.monotonic()
            lines = asyncio.run(run_round(url, calls, speech, args.seconds, size))
            cores = (cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - wall_before)
            times = app_stats(port)
        finally:
            server.stop()
        row = {"streams": size, "gaps": sum(line.gaps for line in lines), "cores": cores, "p99": ms(times, 0.99),
               "failures": [line.failure for line in lines if line.failure]}
        result["rounds"].append(row)
        print(f"  (b) offline N={size:<3}: answer frames after a dry buffer {row['gaps']}; server CPU "
              f"{cores:.2f} cores; in-server p99 {fmt(row['p99'], 3)} ms; failures {len(row['failures'])}",
              flush=True)
    return result


def report(rows: list[dict], offline: dict) -> None:
    print("\n(a) protocol and audio path, instant speech stand-ins: in-server time per inbound frame")
    print(f"{'N':>5} {'session p50':>12} {'session p99':>12} {'bare p99':>9} {'ratio p99':>10} {'cores':>6} "
          f"{'streams/core':>13}")
    best = None
    for size in sorted({r["streams"] for r in rows}):
        session = next((r for r in rows if r["streams"] == size and r["kind"] == "session"), None)
        bare = next((r for r in rows if r["streams"] == size and r["kind"] == "bare"), None)
        if session is None or bare is None:
            continue
        ratio = session["p99"] / bare["p99"] if session["p99"] and bare["p99"] else None
        per_core = size / session["cores"] if session["cores"] > 0 else None
        print(f"{size:>5} {fmt(session['p50'], 3):>12} {fmt(session['p99'], 3):>12} {fmt(bare['p99'], 3):>9} "
              f"{fmt(ratio, 1):>10} {session['cores']:>6.2f} {fmt(per_core, 0):>13}")
        if session["p99"] is not None and session["p99"] < 5 and not session["failures"] and per_core:
            best = per_core if best is None else max(best, per_core)
    print(f"streams one core holds with p99 < 5 ms: {fmt(best, 0)} (goal >= 100)")
    stt, tts = offline["stt"], offline["tts"]
    print("\n(b) offline providers")
    print(f"real-time factor per stream (CPU s per s of audio): STT {stt.cpu_factor:.3f}, TTS {tts.cpu_factor:.3f}")
    speaking = SPEAK_SECONDS / (SPEAK_SECONDS + QUIET_SECONDS)
    load = speaking * stt.cpu_factor + (1 - speaking) * tts.cpu_factor * 0.5
    print(f"speech CPU per stream of this call ({speaking:.0%} caller speech, the agent speaking half the rest): "
          f"{load:.3f} cores -> about {1 / load:.0f} streams per core before the audio falls behind")
    for row in offline["rounds"]:
        print(f"  live N={row['streams']}: frames after a dry buffer {row['gaps']}, server CPU {row['cores']:.2f} "
              f"cores ({row['streams'] / row['cores'] if row['cores'] else float('nan'):.0f} streams per core at "
              f"this load), failures {len(row['failures'])}")
    if rows:
        print("\n(median client lag per round is in the lines above; a large lag means the client, "
              f"not the server, limited the round: {statistics.median([r['client_lag_p99'] or 0 for r in rows]):.1f} "
              "ms median of the p99s)")


if __name__ == "__main__":
    main()

"""Run the product on one machine: the ASGI server and a Celery worker (with beat).

`make run` calls this after migrating and seeding. It says the product is running once
the web server answers `/health`. Ctrl-C stops both children; if either dies, the other
is stopped too, so nothing is left running in the background.
"""

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 10
PROBE_EVERY_SECONDS = 0.2


class Command(BaseCommand):
    help = "Serve the ASGI app and run a Celery worker with beat until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        commands = {
            # uvicorn logs through Python logging, where settings.LOGGING masks socket tokens.
            "web": [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                    "--no-server-header"],
            "worker": [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat",
                       "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
                       "--loglevel", "INFO", "--concurrency", "2", "--hostname", "embedded@%h"],
        }
        # SIGTERM (kill, systemd, a container stop) stops everything just like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        children = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        self.stdout.write(f"Starting the web server and the Celery worker on http://{host}:{port}/ …")
        exit_code = 0
        try:
            # A wildcard address is reached on loopback.
            health = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/health"
            if _answers_once_up(health, children["web"]):
                self.stdout.write(self.style.SUCCESS(
                    f"VoiceDesk is running at http://{host}:{port}/admin/ (web pid {children['web'].pid}, "
                    f"worker pid {children['worker'].pid}). Ctrl-C stops both."))
            while True:
                finished = {n: c.returncode for n, c in children.items() if c.poll() is not None}
                if finished:
                    name, code = next(iter(finished.items()))
                    self.stderr.write(f"{name} exited with code {code}; stopping the rest.")
                    exit_code = code or 1
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            _stop(children.values())
        if exit_code:
            sys.exit(exit_code)


def _answers_once_up(url: str, web: subprocess.Popen) -> bool:
    """Wait until `url` answers (any HTTP status: /health says 503 when a backend is down, but the
    server is up). False when the web process ended first; Ctrl-C interrupts the wait."""
    while web.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(PROBE_EVERY_SECONDS)
    return False


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(processes) -> None:
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

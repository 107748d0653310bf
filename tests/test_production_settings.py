"""The production configuration (.env.example with its secrets filled in): `check --deploy`
finds nothing to warn about, the security headers are really sent, and the checks that
Django ties to its own middleware still run on this product's subclasses of it."""

import importlib.util
import os
import secrets
from pathlib import Path
from unittest import mock

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

ROOT = Path(django_settings.BASE_DIR)
HOST = "voicedesk.example.com"
# What `check --deploy` and the security middleware read.
SECURITY = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_", "SECURE_", "SESSION_COOKIE_", "X_FRAME_OPTIONS",
            "MIDDLEWARE", "FIELD_ENCRYPTION_KEYS", "SILENCED_SYSTEM_CHECKS")


def example_environment(tmp_path: Path, **changes: str) -> dict[str, str]:
    """.env.example as an operator deploys it: the values the README says to fill in, filled in."""
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip()
    env.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               VOICEDESK_VAR_DIR=str(tmp_path), **changes)
    return env


def settings_under(env: dict[str, str]) -> dict:
    """config/settings.py evaluated with `env` as the whole environment: its security settings."""
    spec = importlib.util.spec_from_file_location("production_settings", ROOT / "config" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, env, clear=True):
        spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in dir(module) if name.startswith(SECURITY)}


@pytest.fixture
def production(settings, tmp_path):
    def apply(**changes: str) -> None:
        for name, value in settings_under(example_environment(tmp_path, **changes)).items():
            setattr(settings, name, value)
    return apply


def deploy_check() -> str:
    """`manage.py check --deploy` that fails on warnings too; its output, or the messages it failed with."""
    out, err = __import__("io").StringIO(), __import__("io").StringIO()
    try:
        call_command("check", deploy=True, fail_level="WARNING", stdout=out, stderr=err)
    except SystemCheckError as exc:
        return str(exc)
    return out.getvalue() + err.getvalue()


def test_check_deploy_passes_cleanly_in_the_production_configuration(production):
    production()

    assert deploy_check().strip().startswith("System check identified no issues")


@pytest.mark.parametrize("changes, warning", [
    ({"DJANGO_SECURE_HSTS_SECONDS": "0"}, "security.W004"),
    ({"DJANGO_BEHIND_TLS_PROXY": "false", "DJANGO_SECURE_HSTS_SECONDS": "3600"}, "security.W008"),
    ({"DJANGO_BEHIND_TLS_PROXY": "false", "DJANGO_SECURE_HSTS_SECONDS": "3600"}, "security.W016"),
])
def test_the_checks_django_ties_to_its_own_middleware_still_run(production, changes, warning):
    production(**changes)

    assert warning in deploy_check()


def test_a_missing_security_middleware_is_still_reported(production, settings):
    production()
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("SecurityMiddleware")]

    assert "SecurityMiddleware" in deploy_check()


@pytest.mark.django_db
def test_the_production_configuration_sends_the_security_headers(production, client):
    production()  # before the client's first request, which builds the middleware chain

    plain = client.get("/admin/login/", HTTP_HOST=HOST)
    secure = client.get("/admin/login/", HTTP_HOST=HOST, HTTP_X_FORWARDED_PROTO="https")

    assert plain.status_code == 301 and plain["Location"] == f"https://{HOST}/admin/login/"
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert secure["X-Frame-Options"] == "DENY"
    assert secure["X-Content-Type-Options"] == "nosniff"
    assert secure["Referrer-Policy"] == "same-origin"
    assert secure["Cross-Origin-Opener-Policy"] == "same-origin"
    assert secure.cookies["csrftoken"]["secure"] is True

"""The REST API's conventions, the same on every resource: who may call it (API token, admin
session with CSRF), the one error shape, cursor pages, ETag / If-Match, the OpenAPI schema."""

import io

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from audit.actor import Actor
from audit.models import AuditEntry
from tenants.services import api_token_create, api_token_revoke
from tests.api.conftest import Api
from tests.factories import make_member

from appointments.models import Service

pytestmark = pytest.mark.django_db


def test_without_credentials_the_answer_is_401_in_the_error_shape_with_a_bearer_challenge(alpha):
    response = Client().get("/api/v1/companies/")

    assert response.status_code == 401
    assert response.json() == {"error": {"code": "not_authenticated",
                                         "message": "Authentication credentials were not provided."}}
    assert response["WWW-Authenticate"] == 'Bearer realm="voicedesk-api"'


def test_an_unknown_or_revoked_token_is_refused(alpha):
    user = make_member(alpha, "owner")
    token, plaintext = api_token_create(actor=Actor.system("tests"), user=user, name="script")
    assert Api(plaintext).get("/api/v1/companies/").status_code == 200
    api_token_revoke(actor=Actor.system("tests"), token=token)

    for value in (plaintext, "vdk_not-a-token", "something-else"):
        response = Api(value).get("/api/v1/companies/")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


def test_the_admin_session_reads_and_writes_with_its_csrf_token_only(alpha):
    user = make_member(alpha, "owner")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/services/").status_code == 200
    body = {"company": alpha.pk, "name": "Reinigung", "duration_minutes": 45}

    refused = client.post("/api/v1/services/", body, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    assert not Service.objects.filter(name="Reinigung").exists()

    client.get("/admin/")  # the admin sets the CSRF cookie, as a browser session has it
    csrf = client.cookies["csrftoken"].value
    made = client.post("/api/v1/services/", body, content_type="application/json", headers={"X-CSRFToken": csrf})
    assert made.status_code == 201
    entry = AuditEntry.objects.get(object_type="appointments.service", object_id=str(made.json()["id"]))
    assert (entry.action, entry.actor_kind, entry.actor_user) == ("create", "user", user)


def test_a_token_write_is_audited_as_the_token(alpha, api_as):
    user = make_member(alpha, "editor")
    api = api_as(user)
    made = api.post("/api/v1/services/", {"company": alpha.pk, "name": "Reinigung", "duration_minutes": 45})
    assert made.status_code == 201
    entry = AuditEntry.objects.get(object_type="appointments.service", object_id=str(made.json()["id"]))
    assert entry.actor_kind == "token"
    assert entry.actor_label.startswith("token:tests#")
    assert entry.actor_user == user
    assert entry.changes["name"] == {"before": None, "after": "Reinigung"}


def test_an_unknown_path_is_a_404_in_the_error_shape(owner):
    for path in ("/api/v1/nothing-here/", "/api/v1/services"):
        response = owner.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_bad_input_names_each_field_in_the_error_shape(owner, alpha):
    response = owner.post("/api/v1/services/", {"company": alpha.pk, "name": "", "duration_minutes": 2})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "duration_minutes"}
    assert error["message"].startswith(("name: ", "duration_minutes: "))


def test_a_body_that_is_not_json_is_refused_clearly(owner):
    parse = owner.client.post("/api/v1/services/", "{not json", content_type="application/json",
                              headers={"Authorization": f"Bearer {owner.token}"})
    assert parse.status_code == 400
    assert parse.json()["error"]["code"] == "invalid_json"
    form = owner.client.post("/api/v1/services/", "name=x", content_type="application/x-www-form-urlencoded",
                             headers={"Authorization": f"Bearer {owner.token}"})
    assert form.status_code == 415
    assert form.json()["error"]["code"] == "unsupported_media_type"


def test_lists_are_cursor_pages_and_a_forged_cursor_is_400(owner, alpha):
    for name in ("A", "B", "C"):
        Service.objects.create(company=alpha, name=name)

    first = owner.get("/api/v1/services/", {"page_size": 2}).json()
    assert [s["name"] for s in first["results"]] == ["A", "B"]
    second = owner.client.get(first["next"], headers={"Authorization": f"Bearer {owner.token}"}).json()
    assert [s["name"] for s in second["results"]] == ["C"]
    assert second["next"] is None

    forged = owner.get("/api/v1/services/", {"cursor": "bz1hYmM="})
    assert forged.status_code == 400
    assert forged.json()["error"]["fields"] == {"cursor": ["This cursor is not one this API gave out."]}


def test_an_update_needs_the_current_etag(owner, alpha):
    service = Service.objects.create(company=alpha, name="Kontrolle", duration_minutes=30)
    path = f"/api/v1/services/{service.pk}/"
    etag = owner.get(path)["ETag"]
    assert owner.client.head(path, headers={"Authorization": f"Bearer {owner.token}"})["ETag"] == etag

    missing = owner.patch(path, {"duration_minutes": 40})
    assert missing.status_code == 428
    assert missing.json()["error"]["code"] == "precondition_required"

    changed = owner.patch(path, {"duration_minutes": 40}, **{"If-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag

    # A second admin still holding the old ETag cannot overwrite the change blindly.
    stale = owner.patch(path, {"duration_minutes": 60}, **{"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    service.refresh_from_db()
    assert service.duration_minutes == 40

    deleted = owner.delete(path, **{"If-Match": etag})
    assert deleted.status_code == 412
    assert owner.delete(path, **{"If-Match": changed["ETag"]}).status_code == 204
    assert not Service.objects.filter(pk=service.pk).exists()


def test_the_schema_is_valid_openapi_3_and_describes_every_route():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    import json

    schema = json.loads(out.getvalue())
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for resource in ("companies", "agents", "custom-functions", "prompt-versions", "sync-runs", "services",
                     "closures", "appointments", "calls", "webhook-receipts", "deliveries"):
        assert f"/api/v1/{resource}/" in paths, resource
        assert f"/api/v1/{resource}/{{{'agent_id' if resource == 'agents' else 'id'}}}/" in paths, resource
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"401", "403", "429"} <= set(responses), (method, path)
            assert operation.get("summary"), (method, path)
            if method in ("put", "patch", "delete"):
                assert {"412", "428"} <= set(responses), (method, path)
                assert any(p["name"] == "If-Match" and p["required"] for p in operation["parameters"]), (method, path)
    create = paths["/api/v1/appointments/"]["post"]
    assert "409" in create["responses"] and any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_the_docs_page_serves_swagger_ui_from_this_server(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    # Shipped by drf-spectacular-sidecar and collected with the other static files.
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")

"""The download pages and endpoints: who may download what, tokens for scripts, streaming,
clear answers when there is nothing to export, and an OpenAPI description of every endpoint.

Personas: Rhea researches the deliberation; Rex researches another one; Pat is a logged-in user
with no staff role; Ada is a participant (a session, no account)."""

import json
import re
from io import BytesIO

import networkx as nx
import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connections
from django.http import StreamingHttpResponse
from django.urls import reverse

from elicit.models import StaffAssignment
from graph import exports
from graph.models import ApiToken
from tests.factories import DeliberationFactory, UserFactory
from tests.graph.exports_world import build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    w = build_world()
    w.rhea = UserFactory(username="rhea")
    StaffAssignment.objects.create(
        user=w.rhea, deliberation=w.deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    return w


def url(world, filename, **query):
    path = reverse("research:export", args=[world.deliberation.slug, filename])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def body(response):
    return b"".join(response.streaming_content)


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_a_researcher_downloads_every_format_as_a_stream(client, world):
    client.force_login(world.rhea)
    for filename in exports.FORMATS:
        response = client.get(url(world, filename))
        assert response.status_code == 200, filename
        assert isinstance(response, StreamingHttpResponse)
        assert response["Content-Disposition"].startswith("attachment;")
        expected = b"".join(
            exports.export(filename, deliberation=world.deliberation, run=world.run)
        )
        assert body(response) == expected, filename


def test_the_graph_download_opens_in_networkx(client, world):
    client.force_login(world.rhea)
    graph = nx.read_graphml(BytesIO(body(client.get(url(world, "graph.graphml")))))
    assert graph.number_of_nodes() == 3


def test_a_named_run_is_downloaded_and_an_unknown_one_is_not_found(client, world):
    from graph import pipeline

    named = pipeline.run_scoring(deliberation_id=world.deliberation.pk, name="paper")
    client.force_login(world.rhea)
    data = json.loads(body(client.get(url(world, "graph.json", run="paper"))))
    assert data["run"]["id"] == named.pk
    data = json.loads(body(client.get(url(world, "graph.json", run=world.run.pk))))
    assert data["run"]["id"] == world.run.pk
    assert client.get(url(world, "graph.json", run="nope")).status_code == 404
    assert client.get(url(world, "nonsense.exe")).status_code == 404


def test_others_see_no_export(client, world):
    rex = UserFactory(username="rex")
    StaffAssignment.objects.create(
        user=rex, deliberation=DeliberationFactory(), role=StaffAssignment.Role.RESEARCHER
    )
    pat = UserFactory(username="pat")
    for user in (rex, pat):
        client.force_login(user)
        assert client.get(url(world, "tables.zip")).status_code == 404
        assert (
            client.get(reverse("research:export_index", args=[world.deliberation.slug])).status_code
            == 404
        )
        assert (
            client.get(reverse("research:target", args=[world.deliberation.slug])).status_code
            == 404
        )
    client.logout()
    response = client.get(url(world, "tables.zip"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_a_participant_session_opens_no_research_page(client, world):
    session = client.session
    session["participant_id"] = world.ada.pk
    session.save()
    for name, args in (
        ("research:export_index", [world.deliberation.slug]),
        ("research:target", [world.deliberation.slug]),
        ("research:tokens", []),
    ):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 302 and "login" in response["Location"]


def test_a_token_downloads_and_records_its_use(client, world):
    token, secret = ApiToken.issue(user=world.rhea, name="notebook")
    response = client.get(url(world, "graph.json"), **bearer(secret))
    assert response.status_code == 200
    assert json.loads(body(response))["run"]["id"] == world.run.pk
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_or_unknown_token_gets_401(client, world):
    token, secret = ApiToken.issue(user=world.rhea, name="notebook")
    client.force_login(world.rhea)
    client.post(reverse("research:revoke_token", args=[token.pk]))
    client.logout()
    response = client.get(url(world, "graph.json"), **bearer(secret))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get(url(world, "graph.json"), **bearer("mge_made-up")).status_code == 401
    assert client.get(url(world, "graph.json"), HTTP_AUTHORIZATION="Basic abc").status_code == 401


def test_a_token_of_a_user_without_access_gets_404(client, world):
    _, secret = ApiToken.issue(user=UserFactory(username="pat"), name="curious")
    assert client.get(url(world, "graph.json"), **bearer(secret)).status_code == 404


def test_a_token_stops_working_when_its_user_loses_access(client, world):
    _, secret = ApiToken.issue(user=world.rhea, name="notebook")
    StaffAssignment.objects.filter(user=world.rhea).delete()
    assert client.get(url(world, "tables.zip"), **bearer(secret)).status_code == 404


def test_without_a_scoring_run_the_graph_answers_409_with_a_reason(client):
    world = build_world(score=False)
    rhea = UserFactory(username="rhea")
    StaffAssignment.objects.create(
        user=rhea, deliberation=world.deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    _, secret = ApiToken.issue(user=rhea, name="notebook")
    response = client.get(url(world, "graph.json"), **bearer(secret))
    assert response.status_code == 409
    assert "no finished scoring run" in response.json()["error"]
    client.force_login(rhea)
    response = client.get(url(world, "target.md"))
    assert response.status_code == 409
    assert "no finished scoring run" in response.content.decode()
    assert client.get(url(world, "tables.zip")).status_code == 200
    page = client.get(reverse("research:target", args=[world.deliberation.slug]))
    assert page.status_code == 200 and "No finished scoring run" in page.content.decode()


def test_panel_ids_only_for_those_allowed(client, world):
    def participants_header(user):
        client.force_login(user)
        import csv
        import io
        import zipfile

        archive = zipfile.ZipFile(BytesIO(body(client.get(url(world, "tables.zip")))))
        return next(csv.reader(io.StringIO(archive.read("participants.csv").decode())))

    assert "panel_pid" not in participants_header(world.rhea)
    world.rhea.user_permissions.add(Permission.objects.get(codename="view_panel_ids"))
    world.rhea = type(world.rhea).objects.get(pk=world.rhea.pk)  # drop the permission cache
    assert "panel_pid" in participants_header(world.rhea)


def test_the_index_lists_every_format_and_run(client, world):
    client.force_login(world.rhea)
    page = client.get(reverse("research:export_index", args=[world.deliberation.slug]))
    html = page.content.decode()
    for filename in exports.FORMATS:
        assert url(world, filename) in html
    assert f"?run={world.run.pk}" in html


def test_the_target_page_shows_winners_with_provenance_and_escapes_text(client, world):
    client.force_login(world.rhea)
    page = client.get(reverse("research:target", args=[world.deliberation.slug]))
    html = page.content.decode()
    assert "Value B" in html and "When it is hard" in html
    assert "<img" not in html and "&lt;img" in html
    assert "Provenance" in html


def test_a_researcher_creates_sees_once_and_revokes_a_token(client, world):
    client.force_login(world.rhea)
    page = client.post(reverse("research:tokens"), {"name": "notebook"})
    secret = re.search(r"mge_[A-Za-z0-9_-]{20,}", page.content.decode()).group(0)
    token = ApiToken.objects.get(user=world.rhea)
    assert token.token_hash == ApiToken.hash(secret)
    assert secret not in client.get(reverse("research:tokens")).content.decode()
    client.post(reverse("research:revoke_token", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get(url(world, "graph.json"), **bearer(secret)).status_code == 401


def test_an_empty_token_name_is_refused_and_kept(client, world):
    client.force_login(world.rhea)
    response = client.post(reverse("research:tokens"), {"name": "   "})
    assert response.status_code == 422
    assert not ApiToken.objects.exists()
    long = "x" * 150
    response = client.post(reverse("research:tokens"), {"name": long})
    assert response.status_code == 422 and long in response.content.decode()


def test_nobody_revokes_someone_elses_token(client, world):
    token, _ = ApiToken.issue(user=world.rhea, name="notebook")
    other = UserFactory(username="rex")
    StaffAssignment.objects.create(
        user=other, deliberation=world.deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    client.force_login(other)
    assert client.post(reverse("research:revoke_token", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_openapi_document_describes_every_export(client):
    response = client.get(reverse("research:openapi"))
    document = response.json()
    assert document["openapi"].startswith("3.1")
    described = set(document["paths"])
    for filename in exports.FORMATS:
        path = reverse("research:export", args=["SLUG", filename]).replace("SLUG", "{slug}")
        assert path in described, filename
        operation = document["paths"][path]["get"]
        assert {p["name"] for p in operation["parameters"]} == {"slug", "run"}
        assert "401" in operation["responses"]
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_the_management_command_writes_the_same_bytes(tmp_path, world):
    for filename in exports.FORMATS:
        output = tmp_path / filename
        call_command("export", world.deliberation.slug, format=filename, output=str(output))
        expected = b"".join(
            exports.export(filename, deliberation=world.deliberation, run=world.run)
        )
        assert output.read_bytes() == expected


def test_the_management_command_names_what_is_missing(tmp_path):
    world = build_world(score=False)
    with pytest.raises(CommandError, match="no finished scoring run"):
        call_command(
            "export", world.deliberation.slug, format="graph.json", output=str(tmp_path / "g")
        )
    with pytest.raises(CommandError, match="No deliberation"):
        call_command("export", "missing", format="tables.zip", output=str(tmp_path / "t"))
    call_command("export", world.deliberation.slug, format="tables.zip", output=str(tmp_path / "t"))
    assert (tmp_path / "t").stat().st_size > 0


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_streams_chunk_by_chunk(async_client, settings):
    """Under ASGI Django would read a synchronous iterator whole into memory before sending
    it; the view hands ASGI an asynchronous iterator instead, pulled one chunk at a time."""
    from asgiref.sync import sync_to_async

    def setup():
        world = build_world()
        _, secret = ApiToken.issue(user=UserFactory(username="admin", is_superuser=True), name="t")
        expected = b"".join(
            exports.export("transcripts.jsonl", deliberation=world.deliberation, run=None)
        )
        return world, secret, expected

    world, secret, expected = await sync_to_async(setup)()
    response = await async_client.get(
        url(world, "transcripts.jsonl"), headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200
    assert response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == expected
    await sync_to_async(connections.close_all)()  # the worker thread's connection

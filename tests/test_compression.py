"""Pages go out gzipped to browsers that accept it (the explorer of a large deliberation is a
megabyte of SVG); downloads stream as they are; the proxy does not compress a second time."""

import gzip
import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from elicit.models import StaffAssignment
from tests.factories import UserFactory
from tests.graph.scored import scored_deliberation

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def without_tokens(html: str) -> str:
    """The CSRF token is masked afresh for every response: compare pages without it."""
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


@pytest.fixture
def rhea():
    scored = scored_deliberation()
    user = UserFactory(username="rhea")
    StaffAssignment.objects.create(
        user=user, deliberation=scored.deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    client = Client()
    client.force_login(user)
    return client, scored.deliberation


def test_a_big_page_comes_gzipped_to_a_browser_that_accepts_it_and_decodes_to_the_same_html(rhea):
    client, deliberation = rhea
    url = reverse("research:explorer", args=[deliberation.slug])
    plain = client.get(url)
    compressed = client.get(url, headers={"accept-encoding": "gzip, deflate, br"})
    assert compressed.status_code == 200
    assert compressed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in compressed["Vary"]
    assert int(compressed["Content-Length"]) == len(compressed.content)
    assert len(compressed.content) < len(plain.content) / 2
    decoded = gzip.decompress(compressed.content).decode()
    assert "<svg" in decoded
    assert without_tokens(decoded) == without_tokens(plain.content.decode())


def test_without_accept_encoding_the_page_is_plain(rhea):
    client, deliberation = rhea
    response = client.get(reverse("research:explorer", args=[deliberation.slug]))
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert response.content.decode().lstrip().startswith("<!doctype html>")


def test_downloads_stream_uncompressed_even_to_a_browser_that_accepts_gzip(rhea):
    client, deliberation = rhea
    response = client.get(
        reverse("research:export", args=[deliberation.slug, "graph.json"]),
        headers={"accept-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.streaming
    assert not response.has_header("Content-Encoding")
    graph = json.loads(b"".join(response.streaming_content))
    assert graph["values"]


def test_the_proxy_leaves_compression_to_the_application():
    conf = re.sub(r"#.*", "", (ROOT / "deploy" / "nginx.conf").read_text())
    assert re.search(r"^\s*gzip off;", conf, flags=re.MULTILINE)
    assert "gzip on" not in conf

"""The home page and the deliberation landing page."""

import pytest

from elicit.demo import seed_demo

pytestmark = pytest.mark.django_db


def test_home_leads_to_the_demo_deliberation(client):
    seed_demo()
    response = client.get("/")
    assert response.status_code == 200
    assert b'href="/d/demo/"' in response.content


def test_landing_shows_the_questions_and_their_contexts(client):
    seed_demo()
    response = client.get("/d/demo/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "I am a Christian girl and am considering getting an abortion" in text
    assert "When the person is in distress" in text
    assert "htmx" in text  # htmx is loaded from our own static files, no CDN
    assert "https://unpkg" not in text


def test_landing_says_when_no_language_model_is_configured(client, settings):
    seed_demo()
    settings.LLM_ENABLED = False
    assert "without a language model" in client.get("/d/demo/").content.decode()


def test_a_missing_deliberation_is_a_404_page_not_a_traceback(client):
    response = client.get("/d/no-such-thing/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "could not find" in text
    assert "Traceback" not in text


def test_a_draft_deliberation_is_not_public(client):
    from tests.factories import DeliberationFactory

    DeliberationFactory(slug="draft", status="draft")
    assert client.get("/d/draft/").status_code == 404


def test_pages_send_a_content_security_policy_without_inline_scripts(client):
    seed_demo()
    policy = client.get("/d/demo/")["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if "script-src" in part)
    assert "'unsafe-inline'" not in script_src

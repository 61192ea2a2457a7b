"""A researcher in a real browser: signs in, creates and sets up a deliberation, runs the
pipeline from the dashboard, and watches a job's progress update without reloading."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from elicit import access
from elicit.models import Deliberation
from graph.models import PipelineJob

PASSWORD = "correct horse battery staple"


def make_rhea():
    access.ensure_groups()
    rhea = get_user_model().objects.create_user(username="rhea", password=PASSWORD)
    rhea.groups.add(Group.objects.get(name=access.RESEARCHERS_GROUP))
    return rhea


@pytest.fixture
def rhea(orm, no_llm):
    return orm(make_rhea)


def test_a_researcher_sets_up_a_deliberation_and_watches_the_pipeline(browser_page, orm, rhea):
    page = browser_page
    page.goto("/research/")
    expect(page).to_have_url(re.compile(r"/research/login/\?next=/research/$"))
    page.get_by_label("Username").fill("rhea")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your deliberations")).to_be_visible()

    page.get_by_role("link", name="New deliberation").click()
    page.get_by_label("Title").fill("Advice under pressure")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/research/d/advice-under-pressure/edit/$"))

    # A question without a context is refused, and what was typed stays.
    question = page.locator("#questions fieldset").first
    question.get_by_label("Question").fill("Should I take the job abroad?")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("A question that is asked needs at least one context.")).to_be_visible()
    expect(question.get_by_label("Question")).to_have_value("Should I take the job abroad?")

    question.get_by_label("Contexts, one per line").fill(
        "When a decision has lasting consequences\nWhen family expectations weigh"
    )
    field = page.locator("#demographics fieldset").first
    field.get_by_label("Key").fill("party")
    field.get_by_label("Question asked").fill("Which party is closest to yours?")
    field.get_by_label("Choices, one per line").fill("Left\nRight")
    page.get_by_label("Moderation mode").select_option("strict")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    saved = orm(Deliberation.objects.get, slug="advice-under-pressure")
    assert saved.moderation_mode == "strict"
    assert saved.demographic_fields[0]["choices"] == ["Left", "Right"]

    page.get_by_role("link", name="Dashboard").click()
    panel = page.locator("#pipeline")
    expect(panel).to_contain_text("The pipeline has not run yet")
    page.get_by_role("button", name="Run the pipeline now").click()
    # The test's Celery runs tasks at once: the queued pipeline has already finished.
    expect(panel).to_contain_text("The pipeline is queued")
    expect(panel.locator(".pipeline-state")).to_contain_text("Done")

    # A job that is running: the panel follows its progress without a reload.
    job = orm(
        PipelineJob.objects.create,
        deliberation=saved,
        kind="pipeline",
        status="running",
        progress_done=1,
        progress_total=3,
    )
    page.reload()
    expect(panel).to_contain_text("step 1 of 3")
    orm(lambda: PipelineJob.objects.filter(pk=job.pk).update(progress_done=2))
    expect(panel).to_contain_text("step 2 of 3")
    orm(lambda: PipelineJob.objects.filter(pk=job.pk).update(status="done", progress_done=3))
    expect(panel.locator(".pipeline-state")).to_contain_text("Done")
    expect(panel).not_to_have_attribute("hx-trigger", re.compile("every"))
    expect(page.get_by_role("button", name="Run the pipeline now")).to_be_enabled()

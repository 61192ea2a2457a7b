"""Admins trigger the pipeline from the deliberation and watch its jobs there."""

import pytest

from graph.models import PipelineJob
from tests.factories import DeliberationFactory, ValuesCardFactory


@pytest.mark.django_db(transaction=True)
def test_an_admin_runs_the_pipeline_and_sees_its_jobs_on_the_deliberation(admin_client, no_llm):
    deliberation = DeliberationFactory()
    ValuesCardFactory(deliberation=deliberation)
    response = admin_client.post(
        "/admin/elicit/deliberation/",
        {"action": "run_pipeline_for_deliberations", "_selected_action": [deliberation.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "The pipeline was queued for 1 deliberation" in response.content.decode()
    kinds = set(
        PipelineJob.objects.filter(deliberation=deliberation).values_list("kind", flat=True)
    )
    assert {"pipeline", "deduplicate", "hypotheses", "score"} <= kinds
    page = admin_client.get(f"/admin/elicit/deliberation/{deliberation.pk}/change/").content
    assert b"Background jobs (latest first)" in page
    assert b"Score the graph" in page

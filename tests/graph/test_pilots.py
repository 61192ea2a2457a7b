"""Pilots with simulated participants: the service, the research page, the command.

Persona: Rhea, a researcher assigned to the deliberation she pilots.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from elicit import access
from elicit.models import Deliberation, ModerationFlag, Participant, StaffAssignment
from graph import pilots, pipeline, simulation
from graph.models import PilotRun, ScoringRun, UpgradeJudgment
from tests.factories import ContextFactory, DeliberationFactory, QuestionFactory, UserFactory

pytestmark = pytest.mark.django_db

SMALL = simulation.SimulationSettings(n_values=6, faction_share=0.1)


@pytest.fixture
def deliberation():
    deliberation = DeliberationFactory(slug="abortion-advice")
    context = ContextFactory(deliberation=deliberation, text="When the person is in distress")
    QuestionFactory(deliberation=deliberation, slug="abortion").contexts.add(context)
    return deliberation


@pytest.fixture
def rhea(client, deliberation):
    user = UserFactory(username="rhea")
    StaffAssignment.objects.create(
        user=user, deliberation=deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    client.force_login(user)
    return user


def small_request(**changes):
    return pilots.PilotRequest(
        settings=simulation.SimulationSettings(**{**SMALL.to_dict(), **changes}),
        participants=(30, 60),
        repeats=2,
        seed=3,
    )


def start(deliberation, request):
    run = PilotRun.objects.create(deliberation=deliberation, simulation=request.to_dict())
    return pilots.run_pilot(pilot_run_id=run.pk)


def test_a_pilot_runs_the_real_pipeline_on_simulated_participants_apart_from_real_data(
    deliberation,
):
    run = start(deliberation, small_request())

    assert (run.status, run.error) == (PilotRun.Status.DONE, "")
    pilot = run.pilot
    assert pilot.pilot_of == deliberation and pilot.status == Deliberation.Status.DRAFT
    people = Participant.objects.filter(deliberation=pilot)
    assert people.count() == 60 and not people.filter(is_simulated=False).exists()
    assert UpgradeJudgment.objects.filter(participant__deliberation=pilot).count() == 60 * 5
    # The real contexts were copied, and a second simulated one added.
    texts = list(pilot.contexts.values_list("text", flat=True))
    assert texts[0] == "When the person is in distress" and len(texts) == 2
    # Vote quality ran: the faction of 6 was flagged, and scoring was run both ways.
    flagged = set(
        ModerationFlag.objects.filter(deliberation=pilot).values_list("object_id", flat=True)
    )
    faction = set(people.filter(demographics__faction=True).values_list("pk", flat=True))
    assert len(faction) == 6 and faction <= flagged
    runs = ScoringRun.objects.filter(deliberation=pilot, status="done")
    assert sorted(runs.values_list("include_flagged", flat=True)) == [False, True]
    assert all(r.results["primary"] == "bradley_terry" for r in runs)
    # The report has every participant count, both estimators and the faction.
    sizes = run.report["power"]["sizes"]
    assert [s["participants"] for s in sizes] == [30, 60]
    assert {"pagerank", "bradley_terry", "faction"} <= set(sizes[0])
    # Nothing of the simulation touched the real deliberation.
    assert not Participant.objects.filter(deliberation=deliberation).exists()
    assert not ScoringRun.objects.filter(deliberation=deliberation).exists()
    assert not ModerationFlag.objects.filter(deliberation=deliberation).exists()


def test_a_pilot_never_shows_among_real_deliberations(deliberation):
    Deliberation.objects.filter(pk=deliberation.pk).update(status="open")
    run = start(deliberation, small_request(faction_share=0.0))
    Deliberation.objects.filter(pk=run.pilot.pk).update(status="open")  # even if opened
    admin = UserFactory(username="root", is_superuser=True)
    assert list(access.research_deliberations(admin)) == [deliberation]
    assert list(pipeline.open_deliberation_ids()) == [deliberation.pk]


def test_running_a_pilot_again_replaces_the_old_simulated_data(deliberation):
    first = start(deliberation, small_request())
    second = start(deliberation, small_request(faction_share=0.0))
    assert list(Deliberation.objects.filter(pilot_of=deliberation)) == [second.pilot]
    first.refresh_from_db()
    assert first.pilot is None and first.report["power"]["sizes"]  # the report stays


def test_the_researcher_runs_a_pilot_from_the_page_and_reads_the_report(
    client, deliberation, rhea, django_capture_on_commit_callbacks
):
    page = client.get("/research/d/abortion-advice/pilot/")
    assert page.status_code == 200
    assert "Run the pilot" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/research/d/abortion-advice/pilot/",
            {
                "participants": "30, 60",
                "repeats": 2,
                "n_values": 6,
                "n_contexts": 2,
                "judgments_per_participant": 5,
                "noise": 1,
                "unsure_share": 0.1,
                "faction_share": 0.1,
                "planted": "6, 5, 4, 3, 2, 1",
                "seed": 4,
            },
        )

    run = PilotRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/research/d/abortion-advice/pilot/{run.pk}/"
    assert run.simulation["settings"]["planted"] == [[5, 4, 3, 2, 1, 0]]
    report = client.get(response["Location"]).content.decode()
    assert "Done" in report and "Bradley-Terry" in report and "Faction flagged" in report
    partial = client.get(response["Location"], headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<section id="pilot-report"')
    assert "hx-trigger" not in partial.content.decode()  # finished: no more polling


def test_bad_input_is_explained_and_kept(client, deliberation, rhea):
    response = client.post(
        "/research/d/abortion-advice/pilot/",
        {
            "participants": "30, lots",
            "repeats": 2,
            "n_values": 4,
            "n_contexts": 1,
            "judgments_per_participant": 5,
            "noise": 1,
            "unsure_share": 0,
            "faction_share": 0,
            "planted": "1, 2, 2, 4",
            "seed": 1,
        },
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "30, lots" in body and "1, 2, 2, 4" in body
    assert "whole number" in body and "each value 1 to 4 once" in body
    assert not PilotRun.objects.exists()


def test_only_the_deliberations_researchers_see_its_pilots(client, deliberation):
    client.force_login(UserFactory(username="mallory"))
    assert client.get("/research/d/abortion-advice/pilot/").status_code == 404
    client.logout()
    assert client.get("/research/d/abortion-advice/pilot/").status_code == 302


def test_the_command_prints_the_power_analysis_with_json_last(deliberation):
    out = StringIO()
    call_command(
        "run_pilot",
        "abortion-advice",
        "--participants=30,60",
        "--repeats=2",
        "--values=6",
        "--faction=0.1",
        stdout=out,
    )
    lines = out.getvalue().strip().splitlines()
    report = json.loads(lines[-1])
    assert [s["participants"] for s in report["power"]["sizes"]] == [30, 60]
    assert any("faction flagged" in line for line in lines)

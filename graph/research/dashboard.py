"""Research area: the list of a researcher's deliberations, creating and setting one up, its
dashboard (funnel, tokens, survey, pipeline with live progress) and its reconciliation page.

Thin views: fetch with permission (`graph.research.access`), call a service, render. The
pipeline's progress is a named partial of the dashboard, polled by htmx while a job is queued
or running; without JavaScript, reloading the page shows the same thing.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from elicit import access, setup
from elicit.login import ThrottledLoginForm
from graph import dashboard as stats
from graph import pipeline, reconciliation
from graph.models import ScoringRun
from graph.research.access import research_deliberation, researcher_required
from graph.research.forms import (
    DeliberationForm,
    FieldFormSet,
    NewDeliberationForm,
    QuestionFormSet,
    field_initial,
    question_initial,
)


@require_safe
def index(request):
    """The user's deliberations. Where a sign-in without a destination lands, so a moderator
    with no research role is sent on to the moderation queue."""
    if (
        request.user.is_authenticated
        and not access.is_researcher(request.user)
        and not access.research_deliberations(request.user).exists()
        and access.moderated_deliberations(request.user).exists()
    ):
        return redirect("moderation:queue")
    return research_index(request)


@researcher_required
def research_index(request):
    deliberations = access.research_deliberations(request.user).order_by("-created_at")
    return render(
        request,
        "graph/research/index.html",
        {"deliberations": deliberations, "can_create": access.is_researcher(request.user)},
    )


@require_http_methods(["GET", "POST"])
@researcher_required
def new(request):
    if not access.is_researcher(request.user):
        raise Http404
    form = NewDeliberationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            deliberation = setup.create_deliberation(
                title=form.cleaned_data["title"],
                slug=form.cleaned_data["slug"],
                user=request.user,
            )
            messages.success(request, _("Created. Now add its questions and contexts."))
            return redirect("research:edit", slug=deliberation.slug)
        return render(request, "graph/research/new.html", {"form": form}, status=422)
    return render(request, "graph/research/new.html", {"form": form})


@require_http_methods(["GET", "POST"])
@researcher_required
def edit(request, slug):
    deliberation = research_deliberation(request, slug)
    if request.method == "POST":
        form = DeliberationForm(request.POST, instance=deliberation, prefix="d")
        questions = QuestionFormSet(request.POST, prefix="q")
        fields = FieldFormSet(request.POST, prefix="f")
        if form.is_valid() and questions.is_valid() and fields.is_valid():
            setup.save_settings(
                deliberation=form.save(commit=False),
                actor=request.user,
                via=_("Changed on the setup page."),
            )
            setup.save_questions(deliberation=deliberation, questions=questions.specs())
            setup.save_demographic_fields(deliberation=deliberation, fields=fields.specs())
            messages.success(request, _("Saved."))
            return redirect("research:edit", slug=deliberation.slug)
        status = 422
    else:
        form = DeliberationForm(instance=deliberation, prefix="d")
        questions = QuestionFormSet(initial=question_initial(deliberation), prefix="q")
        fields = FieldFormSet(initial=field_initial(deliberation), prefix="f")
        status = 200
    context = {
        "deliberation": deliberation,
        "form": form,
        "questions": questions,
        "fields": fields,
    }
    return render(request, "graph/research/edit.html", context, status=status)


def pipeline_context(deliberation) -> dict:
    return {"deliberation": deliberation, "pipeline": stats.pipeline_state(deliberation)}


@require_safe
@researcher_required
def dashboard(request, slug):
    deliberation = research_deliberation(request, slug)
    responses, survey = stats.survey(deliberation)
    context = {
        **pipeline_context(deliberation),
        "overview": stats.overview(deliberation),
        "funnel": stats.funnel(deliberation),
        "usage": stats.usage(deliberation),
        "responses": responses,
        "survey": survey,
    }
    return render(request, "graph/research/dashboard.html", context)


@require_safe
@researcher_required
def pipeline_status(request, slug):
    """The pipeline panel alone (what htmx polls); the whole dashboard for a plain request."""
    deliberation = research_deliberation(request, slug)
    if not request.htmx:
        return redirect("research:dashboard", slug=slug)
    return render(request, "graph/research/dashboard.html#pipeline", pipeline_context(deliberation))


@require_POST
@researcher_required
def run_pipeline(request, slug):
    deliberation = research_deliberation(request, slug)
    job = pipeline.queue_pipeline(
        deliberation_id=deliberation.pk, reason="researcher", triggered_by=request.user
    )
    notice = (
        _("The pipeline is already queued or running.")
        if job is None
        else _("The pipeline is queued; its progress shows below.")
    )
    if request.htmx:
        context = {**pipeline_context(deliberation), "notice": notice}
        return render(request, "graph/research/dashboard.html#pipeline", context)
    messages.info(request, notice)
    return redirect("research:dashboard", slug=slug)


@require_safe
@researcher_required
def results(request, slug):
    deliberation = research_deliberation(request, slug)
    run = reconciliation.chosen_run(deliberation, request.GET.get("run"))
    with_flagged = reconciliation.latest_run(deliberation, include_flagged=True)
    without_flagged = (
        run
        if run is not None and not run.include_flagged
        else reconciliation.latest_run(deliberation)
    )
    context = {
        "deliberation": deliberation,
        "run": run,
        "runs": ScoringRun.objects.filter(
            deliberation=deliberation, status=ScoringRun.Status.DONE
        ).only("pk", "name", "estimator", "include_flagged", "started_at")[:30],
        "view": reconciliation.reconcile(run) if run is not None else None,
        "without_flagged": without_flagged,
        "with_flagged": with_flagged,
        "comparison": (
            reconciliation.compare_flagged(without_flagged, with_flagged)
            if without_flagged is not None and with_flagged is not None
            else None
        ),
        "excluded_flagged": (
            reconciliation.excluded_flagged(without_flagged) if without_flagged else 0
        ),
    }
    return render(request, "graph/research/results.html", context)


@require_POST
@researcher_required
def score_with_flagged(request, slug):
    """Queue a scoring run that includes the flagged judgments, for the side-by-side view."""
    deliberation = research_deliberation(request, slug)
    pipeline.queue_job(
        deliberation_id=deliberation.pk,
        kind=pipeline.Kind.SCORE,
        params={"include_flagged": True},
        triggered_by=request.user,
    )
    messages.success(request, _("Scoring with the flagged judgments is queued."))
    return redirect("research:results", slug=slug)


urlpatterns = [
    # Staff sign in here (the admin's login page admits only admin staff).
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="graph/research/login.html",
            redirect_authenticated_user=True,
            authentication_form=ThrottledLoginForm,  # says so when logins are throttled
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", index, name="index"),
    path("new/", new, name="new"),
    path("d/<slug:slug>/", dashboard, name="dashboard"),
    path("d/<slug:slug>/edit/", edit, name="edit"),
    path("d/<slug:slug>/pipeline/", pipeline_status, name="pipeline"),
    path("d/<slug:slug>/pipeline/run/", run_pipeline, name="run_pipeline"),
    path("d/<slug:slug>/results/", results, name="results"),
    path("d/<slug:slug>/results/with-flagged/", score_with_flagged, name="score_with_flagged"),
]

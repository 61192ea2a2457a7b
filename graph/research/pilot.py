"""Research area: pilots with simulated participants (graph/pilots.py).

/research/d/<slug>/pilot/ shows the form and the deliberation's pilot runs; posting it queues a
run (a Celery task) and goes to its report, /research/d/<slug>/pilot/<id>/, which htmx polls
while the run is working (without JavaScript, a reload shows the same thing).
"""

from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_safe

from graph import pilots
from graph.models import PilotRun
from graph.research.access import research_deliberation, researcher_required


class PilotForm(forms.Form):
    participants = forms.CharField(
        label=_("Numbers of simulated participants"),
        initial="50, 200, 1000",
        help_text=_("Comma-separated, from 10 to 5,000 each; up to six."),
    )
    repeats = forms.IntegerField(
        label=_("Simulations per number"), initial=10, min_value=1, max_value=50
    )
    n_values = forms.IntegerField(label=_("Values"), initial=20, min_value=2, max_value=60)
    n_contexts = forms.IntegerField(label=_("Contexts"), initial=2, min_value=1, max_value=10)
    judgments_per_participant = forms.IntegerField(
        label=_("Stories judged per participant"), initial=5, min_value=1, max_value=20
    )
    noise = forms.FloatField(
        label=_("Noise"),
        initial=1.0,
        min_value=0.05,
        max_value=20,
        help_text=_("1 is the setting of the research issue; larger is noisier."),
    )
    unsure_share = forms.FloatField(
        label=_("Share of “not sure”"), initial=0.0, min_value=0, max_value=0.9
    )
    faction_share = forms.FloatField(
        label=_("Share of participants in a faction"),
        initial=0.0,
        min_value=0,
        max_value=0.5,
        help_text=_("A faction always votes for one value (0 for none)."),
    )
    planted = forms.CharField(
        label=_("Planted order (optional)"),
        required=False,
        help_text=_(
            "Value numbers from 1, wisest first, e.g. “3, 1, 2, …”; one order per context "
            "separated by “;”. Empty: a random order per context."
        ),
    )
    seed = forms.IntegerField(label=_("Seed"), initial=1, min_value=0, max_value=2**31 - 1)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            data["request"] = pilots.build_request(
                **{name: data[name] for name in self.fields},
            )
        except pilots.PilotInputError as error:
            for field, message in error.errors.items():
                self.add_error(field or None, message)
        return data


def _real_deliberation(request, slug):
    deliberation = research_deliberation(request, slug)
    if deliberation.is_pilot:  # a pilot is not piloted again
        raise Http404
    return deliberation


@researcher_required
@require_http_methods(["GET", "POST"])
def pilot(request, slug):
    deliberation = _real_deliberation(request, slug)
    form = PilotForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            run = pilots.queue_pilot(
                deliberation=deliberation, request=form.cleaned_data["request"], user=request.user
            )
            return redirect("research:pilot_report", slug=slug, run_id=run.pk)
        status = 422
    runs = PilotRun.objects.filter(deliberation=deliberation)[:20]
    return render(
        request,
        "graph/research/pilot.html",
        {"deliberation": deliberation, "form": form, "runs": runs},
        status=status,
    )


@researcher_required
@require_safe
def pilot_report(request, slug, run_id):
    deliberation = _real_deliberation(request, slug)
    run = get_object_or_404(PilotRun, pk=run_id, deliberation=deliberation)
    template = "graph/research/pilot_report.html"
    if request.htmx:
        template += "#report"
    return render(
        request,
        template,
        {
            "deliberation": deliberation,
            "run": run,
            "rows": pilots.recovery_rows(run.report),
            "working": run.status in (PilotRun.Status.QUEUED, PilotRun.Status.RUNNING),
        },
    )


urlpatterns = [
    path("d/<slug:slug>/pilot/", pilot, name="pilot"),
    path("d/<slug:slug>/pilot/<int:run_id>/", pilot_report, name="pilot_report"),
]

"""Participant-facing pages. Views are thin: fetch with permission, call a service, respond."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from elicit.models import Deliberation


@require_safe
def home(request):
    deliberations = Deliberation.objects.filter(
        status=Deliberation.Status.OPEN, pilot_of__isnull=True
    ).prefetch_related("questions")
    return render(request, "elicit/home.html", {"deliberations": deliberations})


@require_safe
def landing(request, slug):
    deliberation = get_object_or_404(
        Deliberation.objects.exclude(status=Deliberation.Status.DRAFT), slug=slug
    )
    questions = deliberation.questions.filter(is_active=True).prefetch_related("contexts")
    return render(
        request, "elicit/landing.html", {"deliberation": deliberation, "questions": questions}
    )


def not_found(request, exception=None):
    return render(request, "404.html", status=404)

"""Participant steps of the graph side. Thin views: fetch with permission, call a service."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from elicit.models import ValuesCard
from elicit.views import own_interview
from graph import services
from graph.models import CanonicalValue


def own_card(request, slug, interview) -> ValuesCard:
    interview = own_interview(request, slug, interview)
    card = ValuesCard.objects.filter(interview=interview).select_related("deliberation").first()
    if card is None:
        raise Http404
    return card


@require_http_methods(["GET", "POST"])
def match(request, slug, interview):
    """Step 5: "is one of these your value?" The participant joins an existing value or keeps
    theirs distinct. Without close values there is nothing to ask."""
    card = own_card(request, slug, interview)
    neighbours = services.closest_values(card=card)
    if request.method == "POST":
        choice = request.POST.get("value", "")
        value = None
        if choice != "distinct":
            allowed = {n.value.pk for n in neighbours}
            if not choice.isdigit() or int(choice) not in allowed:
                return render(
                    request,
                    "graph/match.html",
                    {"card": card, "neighbours": neighbours, "error": True},
                    status=422,
                )
            value = get_object_or_404(CanonicalValue, pk=int(choice))
        services.choose_value(card=card, value=value)
        return redirect("elicit:card_saved", slug=slug, pk=interview)
    if not neighbours:
        services.choose_value(card=card, value=None)
        return redirect("elicit:card_saved", slug=slug, pk=interview)
    return render(request, "graph/match.html", {"card": card, "neighbours": neighbours})

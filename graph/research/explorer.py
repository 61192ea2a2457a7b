"""Research area: the graph explorer. The latest scoring run drawn as a graph (wiser is higher;
node size by score, edge width by likelihood, colour by support), filtered by question and
context; clicking a value shows its card, the raw cards merged into it, and the upgrades into
and out of it. Without JavaScript a click opens the same page with that value's detail; with
it, htmx swaps in just the detail and puts the value's address in the history (Back steps
back through the selections), and static/js/explorer.js pans and zooms."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_safe

from graph import explorer as service
from graph.models import CanonicalValue
from graph.research.access import research_deliberation, researcher_required
from graph.results import latest_run


def _page(request, slug: str, value_pk: int | None = None):
    deliberation = research_deliberation(request, slug)
    filters = service.parse_filters(deliberation, request.GET)
    run = latest_run(deliberation)
    detail = None
    if value_pk is not None:
        value = CanonicalValue.objects.filter(deliberation=deliberation, pk=value_pk).first()
        if value is None:
            raise Http404
        detail = service.value_detail(
            deliberation=deliberation, value=value, run=run, filters=filters
        )
    query = urlencode(filters.query())
    # htmx asks for a part of the page, except when it restores a page of the history that it
    # has no snapshot of (Back through the explorer's selections and filters): then it needs
    # the whole page, as a reload would show it.
    partial = request.htmx and not request.htmx.history_restore_request
    if partial and detail is not None:
        return render(
            request,
            "graph/research/explorer.html#detail",
            {"deliberation": deliberation, "detail": detail, "query": query},
        )
    # The link of every drawn value: the URL of value 0 with its id as a placeholder.
    href = reverse("research:explorer_value", args=[slug, 0]).removesuffix("0/") + "{id}/"
    view = svg = None
    if run is not None:
        view = service.explorer_view(deliberation=deliberation, run=run, filters=filters)
        svg = view.svg(
            href=href + (f"?{query}" if query else ""),
            selected=value_pk,
            title=deliberation.title,
        )
    context = {
        "deliberation": deliberation,
        "run": run,
        "filters": filters,
        "questions": service.questions(deliberation),
        "context_choices": service.context_choices(deliberation, filters),
        "view": view,
        "svg": svg,
        "detail": detail,
        "query": query,
        "supports": service.SUPPORT_LEGEND,
    }
    name = "graph/research/explorer.html#graph" if partial else "graph/research/explorer.html"
    return render(request, name, context)


@require_safe
@researcher_required
def explorer(request, slug):
    return _page(request, slug)


@require_safe
@researcher_required
def explorer_value(request, slug, pk):
    return _page(request, slug, pk)


urlpatterns = [
    path("d/<slug:slug>/explorer/", explorer, name="explorer"),
    path("d/<slug:slug>/explorer/value/<int:pk>/", explorer_value, name="explorer_value"),
]

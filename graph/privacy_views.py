"""A participant's own data: see what is stored, download it as JSON, delete it. Reachable from
the participant's own session (/d/<slug>/my-data/) or their personal receipt link
(/r/<token>/my-data/), nothing else. Thin views: find the participant, call graph.privacy.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from elicit.models import Participant
from elicit.ratelimit import rate_limited
from elicit.services import forget_participant, session_participant
from elicit.views import public_deliberation
from graph import privacy


def own_participant(request, slug: str = "", token: str = "") -> Participant:
    """The participant whose data this is: by their personal link, else by the session. 404 for
    anyone else, and for an erased participant (there is nothing left to show)."""
    if token:
        participant = (
            Participant.objects.select_related("deliberation")
            .filter(receipt_token=token, erased_at__isnull=True)
            .first()
        )
    else:
        participant = session_participant(request.session, public_deliberation(slug))
    if participant is None:
        raise Http404
    return participant


def urls(slug: str = "", token: str = "") -> dict[str, str]:
    if token:
        names, kwargs = ("my_data_receipt", "download_receipt", "delete_receipt"), {"token": token}
    else:
        names, kwargs = ("my_data", "download_my_data", "delete_my_data"), {"slug": slug}
    return {
        key: reverse(f"graph:{name}", kwargs=kwargs)
        for key, name in zip(("page", "download", "delete"), names, strict=True)
    }


@require_safe
def my_data(request, slug: str = "", token: str = ""):
    participant = own_participant(request, slug, token)
    return render(
        request,
        "graph/my_data.html",
        {
            "deliberation": participant.deliberation,
            "participant": participant,
            "data": privacy.export_participant(participant),
            "urls": urls(slug, token),
        },
    )


@require_POST
@rate_limited
def download(request, slug: str = "", token: str = ""):
    """Everything stored about the participant, as a JSON file."""
    participant = own_participant(request, slug, token)
    data = privacy.export_participant(participant)
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
        content_type="application/json; charset=utf-8",
    )
    filename = f"my-data-{participant.deliberation.slug}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@rate_limited
def delete(request, slug: str = "", token: str = ""):
    """Deletion, with a confirmation step: the page explains what happens under the
    deliberation's policy; the participant ticks a box and confirms."""
    participant = own_participant(request, slug, token)
    deliberation = participant.deliberation
    context = {"deliberation": deliberation, "urls": urls(slug, token)}
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            context["error"] = gettext("Please tick the box to confirm that you want this.")
            return render(request, "graph/my_data_delete.html", context, status=422)
        privacy.erase_participant(participant=participant)
        forget_participant(request.session, deliberation)
        request.session.cycle_key()
        messages.success(request, gettext("Your data was deleted. Thank you for taking part."))
        return redirect("elicit:landing", slug=deliberation.slug)
    return render(request, "graph/my_data_delete.html", context)

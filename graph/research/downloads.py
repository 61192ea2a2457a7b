"""Research area: downloads. The export index, the exports themselves (streamed), the
alignment-target page, API tokens for scripts, and the OpenAPI description of the export
endpoints. Formats and their schema: graph/exports.py and docs/exports.md.

Exports answer a logged-in researcher, or a script sending ``Authorization: Bearer mge_...``
(a token acts as its user, read-only, on these endpoints only). A bad or revoked token gets
401; a user who may not research the deliberation gets 404, as on every research page.
"""

from __future__ import annotations

from pathlib import Path

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import (
    Http404,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST, require_safe

from elicit import access
from elicit.models import Deliberation
from graph import api_tokens, exports
from graph.research.access import research_deliberation, researcher_required
from graph.target import alignment_target

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def _run_ref(request) -> str | None:
    return request.GET.get("run", "").strip() or None


def _resolve(deliberation: Deliberation, ref: str | None):
    """The run asked for (404 when a named run does not exist) or the latest (None if none)."""
    try:
        return exports.resolve_run(deliberation, ref)
    except exports.NoScoringRun:
        if ref:
            raise Http404 from None
        return None


@researcher_required
@require_safe
def export_index(request, slug):
    deliberation = research_deliberation(request, slug)
    runs = list(exports.finished_runs(deliberation)[:50])
    latest = _resolve(deliberation, None)
    return render(
        request,
        "graph/research/export_index.html",
        {
            "deliberation": deliberation,
            "formats": exports.FORMATS.values(),
            "run_formats": [f for f in exports.FORMATS.values() if f.needs_run],
            "runs": runs,
            "latest": latest,
        },
    )


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="exports"'
    return response


def _stream(request, chunks):
    """Under ASGI a synchronous iterator would be read whole into memory before sending; hand
    ASGI an asynchronous one that pulls a chunk at a time (in the request's thread, where the
    database connection lives) so memory stays flat there too."""
    if getattr(request, "scope", None) is None:
        return chunks
    iterator = iter(chunks)
    done = object()
    pull = sync_to_async(lambda: next(iterator, done), thread_sensitive=True)

    async def agen():
        while (chunk := await pull()) is not done:
            yield chunk

    return agen()


@require_safe
def export(request, slug, filename):
    fmt = exports.FORMATS.get(filename)
    if fmt is None:
        raise Http404
    try:
        user = api_tokens.authenticate(request.headers.get("Authorization", ""))
    except api_tokens.InvalidToken:
        return _unauthorized(gettext("The API token is invalid or has been revoked."))
    by_token = user is not None
    user = user or request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    deliberation = get_object_or_404(Deliberation, slug=slug)
    if not access.can_research(user, deliberation):
        raise Http404
    run = _resolve(deliberation, _run_ref(request))
    if fmt.needs_run and run is None:
        message = gettext(
            "This deliberation has no finished scoring run yet, so there is no graph or "
            "alignment target to export. Run the scoring first."
        )
        if by_token:
            return JsonResponse({"error": message}, status=409)
        return render(
            request,
            "graph/research/export_index.html",
            {
                "deliberation": deliberation,
                "formats": exports.FORMATS.values(),
                "runs": [],
                "latest": None,
                "error": message,
            },
            status=409,
        )
    chunks = exports.export(
        filename,
        deliberation=deliberation,
        run=run,
        panel_ids=exports.may_see_panel_ids(user),
    )
    response = StreamingHttpResponse(_stream(request, chunks), content_type=fmt.content_type)
    label = f"run-{run.name or run.pk}-" if run is not None and fmt.needs_run else ""
    response["Content-Disposition"] = f'attachment; filename="{slug}-{label}{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@researcher_required
@require_safe
def target(request, slug):
    deliberation = research_deliberation(request, slug)
    run = _resolve(deliberation, _run_ref(request))
    return render(
        request,
        "graph/research/target.html",
        {
            "deliberation": deliberation,
            "run": run,
            "target": alignment_target(run) if run is not None else None,
        },
    )


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("What the token is for"),
        max_length=100,
        help_text=_("For example: the analysis notebook on my laptop."),
    )


@researcher_required
def tokens(request):
    form = TokenForm(request.POST or None)
    status, created = 200, None
    if request.method == "POST":
        if form.is_valid():
            created = api_tokens.create_token(user=request.user, name=form.cleaned_data["name"])
            form = TokenForm()
        else:
            status = 422
    return render(
        request,
        "graph/research/tokens.html",
        {
            "form": form,
            "created": created,
            "tokens": request.user.api_tokens.order_by("revoked_at", "-created_at"),
        },
        status=status,
    )


@researcher_required
@require_POST
def revoke_token(request, pk):
    if not api_tokens.revoke_token(user=request.user, token_id=pk):
        raise Http404
    messages.success(request, gettext("The token is revoked: scripts using it now get 401."))
    return redirect("research:tokens")


@require_safe
def openapi(request):
    """The OpenAPI 3.1 description of the export endpoints (kept in the repository)."""
    return HttpResponse(OPENAPI_PATH.read_bytes(), content_type="application/json")


urlpatterns = [
    path("d/<slug:slug>/export/", export_index, name="export_index"),
    path("d/<slug:slug>/export/<str:filename>", export, name="export"),
    path("d/<slug:slug>/target/", target, name="target"),
    path("tokens/", tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", revoke_token, name="revoke_token"),
    path("api/openapi.json", openapi, name="openapi"),
]

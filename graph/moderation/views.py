"""The moderation pages (`/moderation/`). Thin views: fetch with permission (elicit.access),
call a service of graph/moderation/services.py, redirect or render.

Who may do what: admins everything; moderators act on the deliberations they are assigned to;
researchers assigned to a deliberation read its queue and log but act on nothing (403);
anyone else gets 404 (anonymous users go to the login page first).
"""

from __future__ import annotations

import csv
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from elicit import access
from elicit.cards import CardDraft, InvalidCard
from elicit.models import Deliberation, ModerationAction, ModerationFlag, ValuesCard
from graph.models import CanonicalValue
from graph.moderation import services
from graph.moderation.queries import (
    KIND_LABELS,
    STATE_LABELS,
    acting_deliberations,
    audit_log,
    csv_rows,
    flag_context,
    label_rows,
    queue,
    reasons,
    value_context,
    value_list,
)

PAGE_SIZE = 50


def staff_required(view):
    """Anonymous users go to the login page; users with no moderation role anywhere get 404."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not access.moderated_deliberations(request.user).exists():
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def viewable(request, deliberation_id: int) -> Deliberation:
    deliberation = get_object_or_404(Deliberation, pk=deliberation_id)
    if not access.can_view_moderation(request.user, deliberation):
        raise Http404
    return deliberation


def actionable(request, deliberation_id: int) -> Deliberation:
    """The deliberation, if the user may act on its moderation (researchers: 403)."""
    deliberation = viewable(request, deliberation_id)
    if not access.can_moderate(request.user, deliberation):
        raise PermissionDenied
    return deliberation


def in_deliberation(request, objects, pk: int, *, acting: bool = False) -> Any:
    """The object *pk* of *objects* (a model or a queryset), if the user may view the moderation
    of its deliberation; with *acting*, if they may act on it (researchers: 403)."""
    found = get_object_or_404(objects, pk=pk)
    (actionable if acting else viewable)(request, found.deliberation_id)
    return found


def back(request, default: str):
    """Back where the form was sent from, if that is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def reason_of(request) -> str:
    return request.POST.get("reason", "").strip()[:2000]


# --- The queue ----------------------------------------------------------------------------------


@require_safe
@staff_required
def queue_page(request):
    """Flagged items, oldest first, filtered by deliberation, source, reason, state, search."""
    flags, filters = queue(request.user, request.GET)
    page = Paginator(flags, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    label_rows(page.object_list)
    context = {
        "section": "queue",
        "page": page,
        "filters": filters,
        "deliberations": access.moderated_deliberations(request.user).order_by("title"),
        "sources": ModerationFlag.Source.choices,
        "state_filters": list(STATE_LABELS.items()),
        "kinds": list(KIND_LABELS.items()),
        "reasons": reasons(request.user),
        "query": request.GET.urlencode(),
        "page_query": _without_page(request),
    }
    template = "graph/moderation/queue.html"
    # The filters push their address into the history; going Back to one that htmx kept no
    # snapshot of, it asks with HX-Request again, and then needs the whole page.
    partial = request.htmx and not request.htmx.history_restore_request
    return render(request, f"{template}#rows" if partial else template, context)


def _without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_POST
@staff_required
def claim_next(request):
    """Claim the oldest unclaimed item of the queue as filtered, and open it."""
    return take_next(request, request.POST)


def take_next(request, filters):
    flags, _filters = queue(request.user, filters)
    flags = flags.filter(deliberation__in=acting_deliberations(request.user))
    flag = services.claim_next(user=request.user, flags=flags)
    if flag is None:
        messages.info(request, _("Nothing left to claim in this queue."))
        return back(request, reverse("moderation:queue"))
    return redirect("moderation:flag", pk=flag.pk)


# --- One item -----------------------------------------------------------------------------------


def get_flag(request, pk: int, *, acting: bool = False) -> ModerationFlag:
    flags = ModerationFlag.objects.select_related("deliberation")
    return in_deliberation(request, flags, pk, acting=acting)


@require_safe
@staff_required
def flag_page(request, pk):
    flag = get_flag(request, pk)
    return render(request, "graph/moderation/flag.html", flag_context(request.user, flag))


@require_POST
@staff_required
def claim(request, pk):
    flag = get_flag(request, pk, acting=True)
    if not services.claim(flag_id=flag.pk, user=request.user):
        messages.error(request, _("Another moderator is already working on this item."))
    return redirect("moderation:flag", pk=flag.pk)


@require_POST
@staff_required
def release(request, pk):
    flag = get_flag(request, pk, acting=True)
    services.release(flag_id=flag.pk, user=request.user)
    return back(request, reverse("moderation:queue"))


ACTIONS = {"approve", "hide", "ban"}


@require_POST
@staff_required
def act(request, pk):
    """Approve the item, hide it, or ban its author; then on to the next item of the queue."""
    flag = get_flag(request, pk, acting=True)
    name = request.POST.get("action", "")
    target = flag.target
    if name not in ACTIONS or target is None:
        messages.error(request, _("Choose one of the actions offered."))
        return redirect("moderation:flag", pk=flag.pk)
    reason = reason_of(request)
    try:
        if name == "approve":
            services.approve(actor=request.user, target=target, reason=reason, flag=flag)
        elif name == "hide":
            services.hide(actor=request.user, target=target, reason=reason, flag=flag)
        else:
            author = services.author_of(target)
            if author is None:
                raise services.ModerationError(_("No participant wrote this item."))
            services.ban(actor=request.user, participant=author, reason=reason, flag=flag)
    except services.ModerationError as error:
        messages.error(request, str(error))
        return redirect("moderation:flag", pk=flag.pk)
    messages.success(request, _("Done. The action is in the log and can be undone there."))
    if request.POST.get("then") == "next":
        return take_next(request, {"deliberation": flag.deliberation_id})
    return back(request, reverse("moderation:queue"))


# --- Cards: edit, split -------------------------------------------------------------------------


def get_card(request, pk: int) -> ValuesCard:
    return in_deliberation(request, ValuesCard, pk, acting=True)


def optional_flag(request, card: ValuesCard) -> ModerationFlag | None:
    pk = request.POST.get("flag") or request.GET.get("flag") or ""
    if not pk.isdigit():
        return None
    return ModerationFlag.objects.filter(pk=int(pk), deliberation_id=card.deliberation_id).first()


@staff_required
def edit_card(request, pk):
    """Change a card's wording (its earlier wording is kept). A form sent back with errors
    keeps what the moderator typed."""
    card = get_card(request, pk)
    flag = optional_flag(request, card)
    draft = CardDraft(title=card.title, description=card.description, policies=card.policies)
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        draft = CardDraft.from_dict(request.POST)
        try:
            services.edit_card(
                actor=request.user,
                card=card,
                title=draft.title,
                description=draft.description,
                policies=draft.policies,
                reason=reason_of(request),
                flag=flag,
            )
        except InvalidCard as invalid:
            errors, status = invalid.errors, 422
        except services.ModerationError as error:
            errors, status = {"form": [str(error)]}, 422
        else:
            messages.success(request, _("The card's wording was changed; the old one is kept."))
            if flag is not None:
                return redirect("moderation:flag", pk=flag.pk)
            if card.canonical_id:
                return redirect("moderation:value", pk=card.canonical_id)
            return redirect("moderation:queue")
    elif request.method != "GET":
        return HttpResponse(status=405)
    return render(
        request,
        "graph/moderation/edit_card.html",
        {
            "card": card,
            "flag": flag,
            "draft": draft,
            "policies_text": "\n".join(draft.policies),
            "errors": errors,
            "reason": reason_of(request),
            "revisions": card.revisions.select_related("edited_by").order_by("-created_at"),
        },
        status=status,
    )


@require_POST
@staff_required
def split_card(request, pk):
    card = get_card(request, pk)
    try:
        action = services.split_card(actor=request.user, card=card, reason=reason_of(request))
    except services.ModerationError as error:
        messages.error(request, str(error))
        return back(request, reverse("moderation:values") + f"?deliberation={card.deliberation_id}")
    messages.success(request, _("The card now has a value of its own."))
    return redirect("moderation:value", pk=action.after["new_value"])


# --- Values: list, merge ------------------------------------------------------------------------


@require_safe
@staff_required
def values_page(request):
    """Canonical values of a deliberation with their cards, to find duplicates to merge."""
    context = value_list(request.user, request.GET)
    return render(request, "graph/moderation/values.html", context)


def get_value(request, pk: int, *, acting: bool = False) -> CanonicalValue:
    values = CanonicalValue.objects.select_related("deliberation")
    return in_deliberation(request, values, pk, acting=acting)


@require_safe
@staff_required
def value_page(request, pk):
    value = get_value(request, pk)
    return render(request, "graph/moderation/value.html", value_context(request.user, value))


@require_POST
@staff_required
def merge_value(request, pk):
    """Merge this value into the one chosen (by id) in the form."""
    source = get_value(request, pk, acting=True)
    into = request.POST.get("into", "")
    target = (
        CanonicalValue.objects.filter(pk=int(into), deliberation_id=source.deliberation_id).first()
        if into.isdigit()
        else None
    )
    if target is None:
        context = value_context(request.user, source)
        context.update(merge_error=_("Choose the value to merge this one into."), into=into)
        return render(request, "graph/moderation/value.html", context, status=422)
    try:
        services.merge_values(
            actor=request.user, source=source, target=target, reason=reason_of(request)
        )
    except services.ModerationError as error:
        context = value_context(request.user, source)
        context.update(merge_error=str(error), into=into)
        return render(request, "graph/moderation/value.html", context, status=422)
    messages.success(
        request,
        _("“%(source)s” was merged into “%(target)s”. It can be undone from the log.")
        % {"source": source.title, "target": target.title},
    )
    return redirect("moderation:value", pk=target.pk)


# --- The audit log ------------------------------------------------------------------------------


@require_safe
@staff_required
def log_page(request):
    actions, filters = audit_log(request.user, request.GET)
    page = Paginator(actions, PAGE_SIZE).get_page(request.GET.get("page"))
    mine = set(acting_deliberations(request.user).values_list("pk", flat=True))
    undoable = {
        a.pk for a in page.object_list if a.deliberation_id in mine and services.can_undo(a)
    }
    return render(
        request,
        "graph/moderation/log.html",
        {
            "section": "log",
            "page": page,
            "filters": filters,
            "undoable": undoable,
            "deliberations": access.moderated_deliberations(request.user).order_by("title"),
            "page_query": _without_page(request),
            "query": request.GET.urlencode(),
        },
    )


class Echo:
    def write(self, value: str) -> str:
        return value


@require_safe
@staff_required
def log_csv(request):
    """The audit log as CSV, cells that a spreadsheet would run as a formula neutralised."""
    actions, _filters = audit_log(request.user, request.GET)
    writer = csv.writer(Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in csv_rows(actions)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="moderation-log.csv"'
    return response


@require_POST
@staff_required
def undo(request, pk):
    action = get_object_or_404(ModerationAction, pk=pk)
    if action.deliberation_id is None:
        raise Http404
    actionable(request, action.deliberation_id)
    try:
        services.undo(actor=request.user, action=action, reason=reason_of(request))
    except services.ModerationError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Undone. The undo is in the log too."))
    return back(request, reverse("moderation:log"))

"""Participant-facing pages. Views are thin: fetch with permission, call a service, respond.

Every page works without JavaScript: the interview streams over a websocket when it can, and
its forms post normally when it cannot.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from elicit import interviewer, ratelimit, services
from elicit.forms import CardForm, JoinForm
from elicit.models import Deliberation, Interview, Message


def client_address(request) -> str:
    return ratelimit.client_address(request)


def public_deliberation(slug: str, request=None) -> Deliberation:
    """The deliberation of the URL, unless it is a draft (404); given the `request`, the row
    its rate limit already read."""
    if request is None:
        return get_object_or_404(
            Deliberation.objects.exclude(status=Deliberation.Status.DRAFT), slug=slug
        )
    deliberation = services.request_deliberation(request, slug)
    if deliberation is None or deliberation.status == Deliberation.Status.DRAFT:
        raise Http404
    return deliberation


def participant_or_404(request, deliberation: Deliberation):
    participant = services.session_participant(request.session, deliberation)
    if participant is None:
        raise Http404
    return participant


@require_safe
def home(request):
    deliberations = Deliberation.objects.filter(
        status=Deliberation.Status.OPEN, pilot_of__isnull=True
    ).prefetch_related("questions")
    return render(request, "elicit/home.html", {"deliberations": deliberations})


@require_safe
def landing(request, slug):
    deliberation = public_deliberation(slug)
    panel = services.PanelIds.from_query(request.GET)
    participant = services.session_participant(request.session, deliberation)
    returning = services.find_panel_participant(deliberation=deliberation, panel=panel)
    if returning is not None and returning.erased_at is not None:
        messages.info(request, services.ERASED_REJOIN)
        returning = None
    if returning is not None:
        # The same panel id coming back resumes the same participant.
        services.remember_participant(request.session, returning)
        return redirect("elicit:interview", slug=slug)
    form = JoinForm(deliberation=deliberation, initial=request.GET.dict())
    return render(request, "elicit/landing.html", landing_context(deliberation, form, participant))


def landing_context(deliberation, form, participant=None) -> dict:
    questions = deliberation.questions.filter(is_active=True).prefetch_related("contexts")
    return {
        "deliberation": deliberation,
        "questions": questions,
        "form": form,
        "participant": participant,
    }


@require_POST
@ratelimit.rate_limited(join=True)
def join(request, slug):
    deliberation = public_deliberation(slug)
    form = JoinForm(request.POST, deliberation=deliberation)
    if not form.is_valid():
        return render(
            request, "elicit/landing.html", landing_context(deliberation, form), status=422
        )
    try:
        participant = services.join(
            deliberation=deliberation,
            panel=services.PanelIds.from_query(form.cleaned_data),
            invite_token=form.cleaned_data["invite"],
            demographics=form.demographics(),
        )
    except services.ParticipationError as error:
        form.add_error(None, str(error))
        return render(
            request, "elicit/landing.html", landing_context(deliberation, form), status=403
        )
    request.session.cycle_key()  # a fresh session id for the new participant
    services.remember_participant(request.session, participant)
    url = reverse("elicit:interview", kwargs={"slug": slug})
    if form.cleaned_data.get("q"):
        url += f"?q={form.cleaned_data['q']}"
    return HttpResponseRedirect(url)


def interview_context(interview: Interview, *, card_form: CardForm | None = None) -> dict:
    transcript = services.transcript(interview)
    last = transcript[-1] if transcript else None
    waiting = last is not None and last.status == Message.Status.STREAMING
    return {
        "deliberation": interview.participant.deliberation,
        "interview": interview,
        "messages_": transcript,
        "card_form": card_form or CardForm.for_draft(interview.draft_card),
        "waiting": waiting,
        "can_retry": not waiting
        and interview.status != Interview.Status.BLOCKED
        and services.reply_due(last),
        "client_id": services.new_client_id(),
        "max_chars": settings.MESSAGE_MAX_CHARS,
    }


@require_safe
def interview_page(request, slug):
    deliberation = public_deliberation(slug)
    participant = services.session_participant(request.session, deliberation)
    if participant is None:
        messages.info(request, gettext("Please read and agree to the terms first."))
        return redirect("elicit:landing", slug=slug)
    try:
        question = services.pick_question(participant=participant, slug=request.GET.get("q", ""))
    except services.ParticipationError as error:
        messages.error(request, str(error))
        return redirect("elicit:landing", slug=slug)
    interview = services.start_interview(participant=participant, question=question)
    if interview.status == Interview.Status.COMPLETED:
        return redirect(next_step_url(interview))
    return render(request, "elicit/interview.html", interview_context(interview))


def own_interview(request, slug, pk) -> Interview:
    deliberation = public_deliberation(slug, request)
    participant = participant_or_404(request, deliberation)
    interview = services.interview_for(participant=participant, interview_id=pk)
    if interview is None:
        raise Http404
    return interview


@require_POST
@ratelimit.rate_limited
def send_message(request, slug, pk):
    """The interview without websockets: save the message, wait for the whole reply."""
    interview = own_interview(request, slug, pk)
    action = request.POST.get("action", "send")
    if action == "send":
        try:
            services.record_participant_message(
                interview=interview,
                text=request.POST.get("message", ""),
                client_id=request.POST.get("client_id", ""),
                address=client_address(request),
            )
        except services.ParticipationError as error:
            context = interview_context(interview)
            context["composer_error"] = str(error)
            context["composer_text"] = request.POST.get("message", "")
            status = 429 if isinstance(error, services.TooFast) else 422
            return render(request, "elicit/interview.html", context, status=status)
    interviewer.reply_blocking(interview.pk)
    url = reverse("elicit:interview", kwargs={"slug": slug})
    return redirect(f"{url}?q={interview.question.slug}")


@require_POST
@ratelimit.rate_limited
def confirm_card(request, slug, pk):
    interview = own_interview(request, slug, pk)
    form = CardForm(request.POST)
    if not form.is_valid():
        context = interview_context(interview, card_form=form)
        template = "elicit/interview.html#card" if request.htmx else "elicit/interview.html"
        return render(request, template, context, status=422)
    try:
        services.confirm_card(interview=interview, draft=form.draft)
    except services.ParticipationError as error:
        form.add_error(None, str(error))
        return render(
            request, "elicit/interview.html", interview_context(interview, card_form=form), 422
        )
    url = next_step_url(interview)
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def next_step_url(interview: Interview) -> str:
    """After the card: the graph's steps (matching, votes, judgments), by URL name only, so
    that elicit never imports graph."""
    slug = interview.participant.deliberation.slug
    return reverse("graph:match", kwargs={"slug": slug, "interview": interview.pk})


def not_found(request, exception=None):
    return render(request, "404.html", status=404)

"""Participant steps of the graph side. Thin views: fetch with permission, call a service.

After the card: match (is one of these your value?) -> vote (the wisest values) -> judge (the
upgrade stories, one at a time) -> done. Every step can be reloaded or resumed later, works
without JavaScript (a plain POST and a redirect), and answers an htmx request with just the
named partial of its own template.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from elicit import ratelimit
from elicit.models import ValuesCard
from elicit.ratelimit import rate_limited
from elicit.services import session_participant
from elicit.views import own_interview, public_deliberation
from graph import explorer, participation, results, services
from graph.forms import SurveyForm
from graph.models import CanonicalValue, UpgradeJudgment
from graph.moderation import services as moderation


def own_card(request, slug, interview) -> ValuesCard:
    interview = own_interview(request, slug, interview)
    card = ValuesCard.objects.filter(interview=interview).select_related("deliberation").first()
    if card is None:
        raise Http404
    return card


@require_http_methods(["GET", "POST"])
@rate_limited
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
        return redirect("graph:vote", slug=slug)
    if not neighbours:
        services.choose_value(card=card, value=None)
        return redirect("graph:vote", slug=slug)
    return render(request, "graph/match.html", {"card": card, "neighbours": neighbours})


# --- Helpers of the steps below -----------------------------------------------------------------


def participant_step(view):
    """Give the view the session's participant of the deliberation; someone who has not joined
    is sent to the landing page to read the terms."""

    @wraps(view)
    def wrapper(request, slug, **kwargs):
        deliberation = public_deliberation(slug, request)
        participant = session_participant(request.session, deliberation)
        if participant is None:
            messages.info(request, gettext("Please read and agree to the terms first."))
            return go(request, reverse("elicit:landing", kwargs={"slug": slug}))
        return view(request, participant, **kwargs)

    return wrapper


def go(request, url: str):
    """Move on to the next page: a redirect, or a full page load for an htmx request (whose
    swap target belongs to the page being left)."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def step_url(name: str, participant, **kwargs) -> str:
    return reverse(name, kwargs={"slug": participant.deliberation.slug, **kwargs})


def render_step(request, template: str, partial: str, context: dict, status: int = 200):
    """The whole page, or for htmx just the partial: both are the same HTML."""
    name = f"{template}#{partial}" if request.htmx else template
    return render(request, name, context, status=status)


def posted_ids(values: list[str]) -> set[int]:
    # Anything that is not an id cannot have been shown: -1 makes the service refuse it.
    return {int(v) if v.isdigit() else -1 for v in values}


# --- Wisest values ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@rate_limited
@participant_step
def vote(request, participant):
    """Step 6: choose the wisest among about six values of the participant's question."""
    question = participation.vote_question(participant)
    if question is None:  # no card yet: the interview comes first
        return go(request, step_url("elicit:interview", participant))
    wisest_vote = participation.start_vote(participant=participant, question=question)
    if wisest_vote is None:  # fewer than two values to choose from
        return go(request, step_url("graph:judge", participant))

    def context(**extra) -> dict:  # what the page shows, read only when it is shown
        return {
            "deliberation": participant.deliberation,
            "question": question,
            "vote": wisest_vote,
            "values": participation.vote_values(wisest_vote),
            "chosen": set(wisest_vote.chosen.values_list("pk", flat=True)),
            **extra,
        }

    if request.method == "POST":
        chosen = posted_ids(request.POST.getlist("value"))
        try:
            participation.record_vote(vote=wisest_vote, chosen_ids=chosen)
        except participation.StepError as error:
            page = context(chosen=chosen, error=str(error))
            return render_step(request, "graph/vote.html", "step", page, status=422)
        return go(request, step_url("graph:judge", participant))
    return render_step(request, "graph/vote.html", "step", context())


# --- Upgrade judgments --------------------------------------------------------------------------


def story_context(
    participant, judgment: UpgradeJudgment, progress: tuple[int, int] | None = None, **extra
) -> dict:
    number, total = progress or participation.story_progress(participant)
    context = {
        "deliberation": participant.deliberation,
        "judgment": judgment,
        "hypothesis": judgment.hypothesis,
        "verdicts": UpgradeJudgment.Verdict.choices,
        "verdict": judgment.verdict,
        "comment": judgment.comment,
        "number": min(number, total),
        "total": total,
        "comment_max": participation.COMMENT_MAX_CHARS,
        "action": step_url("graph:judge", participant),
    }
    context.update(extra)
    return context


def next_story(request, participant):
    story = participation.next_story(participant=participant)
    if story is None:  # judged enough, or nothing left to judge
        return go(request, step_url("graph:done", participant))
    judgment, progress = story
    return render_step(
        request, "graph/judge.html", "story", story_context(participant, judgment, progress)
    )


@require_http_methods(["GET", "POST"])
@rate_limited
@participant_step
def judge(request, participant):
    """Step 7: the upgrade stories, one at a time, until enough are answered."""
    if request.method == "GET":
        return next_story(request, participant)
    judgment_id = request.POST.get("judgment", "")
    judgment = participation.own_judgment(
        participant=participant, judgment_id=int(judgment_id) if judgment_id.isdigit() else 0
    )
    if judgment is None:
        raise Http404
    verdict, comment = request.POST.get("verdict", ""), request.POST.get("comment", "")
    try:
        participation.answer_judgment(judgment=judgment, verdict=verdict, comment=comment)
    except participation.StepError as error:
        context = story_context(
            participant, judgment, verdict=verdict, comment=comment, error=str(error)
        )
        return render_step(request, "graph/judge.html", "story", context, status=422)
    if request.htmx:  # swap in the next story (or go to the end) without a round trip
        return next_story(request, participant)
    return redirect(step_url("graph:judge", participant))


@require_safe
@participant_step
def judgments(request, participant):
    """The participant's answered judgments, each of which they may revise."""
    return render(
        request,
        "graph/judgments.html",
        {
            "deliberation": participant.deliberation,
            "judgments": participation.answered_judgments(participant),
            "left": participation.judgments_left(participant),
        },
    )


@require_http_methods(["GET", "POST"])
@rate_limited
@participant_step
def revise_judgment(request, participant, pk):
    """Change an earlier answer; every answer is kept in the judgment's history."""
    judgment = participation.own_judgment(participant=participant, judgment_id=pk)
    if judgment is None:
        raise Http404
    if not judgment.verdict:  # not answered yet: it is the current story
        return go(request, step_url("graph:judge", participant))
    extra = {
        "revising": True,
        "history": participation.judgment_history(judgment),
        "action": step_url("graph:revise_judgment", participant, pk=judgment.pk),
    }
    if request.method == "POST":
        verdict, comment = request.POST.get("verdict", ""), request.POST.get("comment", "")
        try:
            participation.answer_judgment(judgment=judgment, verdict=verdict, comment=comment)
        except participation.StepError as error:
            context = story_context(
                participant, judgment, verdict=verdict, comment=comment, error=str(error), **extra
            )
            return render_step(request, "graph/judge.html", "story", context, status=422)
        messages.success(
            request, gettext("Your answer was changed. Your earlier answers are kept.")
        )
        return go(request, step_url("graph:judgments", participant))
    return render_step(
        request, "graph/judge.html", "story", story_context(participant, judgment, **extra)
    )


# --- The end ------------------------------------------------------------------------------------


def end_context(request, participant, *, finished: bool, **extra) -> dict:
    result = results.participant_result(participant)
    receipt = reverse("graph:receipt", kwargs={"token": participant.receipt_token})
    return {
        "deliberation": participant.deliberation,
        "participant": participant,
        "card": participation.latest_card(participant),
        "answered": participation.answered_count(participant),
        "finished": finished,
        "result": result,
        "graph_svg": explorer.participant_svg(result),
        "receipt_url": request.build_absolute_uri(receipt),
        "redirect_url": results.completion_redirect(participant),
        **extra,
    }


@require_http_methods(["GET", "POST"])
@rate_limited
@participant_step
def done(request, participant):
    """Step 8: where the participant's value sits in the graph, the legitimacy survey, then the
    completion code (or, for a panel participant, the way back to the panel). Answering or
    skipping the survey completes the participation, once."""
    if not results.journey_finished(participant):
        return render(request, "graph/done.html", end_context(request, participant, finished=False))
    if request.method == "POST":
        form = None if "skip" in request.POST else SurveyForm(request.POST)
        if form is not None:
            if not form.is_valid():
                context = end_context(request, participant, finished=True, form=form)
                return render(request, "graph/done.html", context, status=422)
            results.record_survey(participant=participant, answers=form.cleaned_data)
        results.complete(participant=participant)
        if redirect_url := results.completion_redirect(participant):
            return redirect(redirect_url)
        return redirect(step_url("graph:done", participant))
    context = end_context(request, participant, finished=True, form=SurveyForm())
    return render(request, "graph/done.html", context)


@require_safe
def receipt(request, token):
    """The personal link: where the participant's value sits now, readable without the session.
    It shows no panel id, demographics, transcript or comment, and logs nobody in."""
    participant = results.receipt_participant(token)
    if participant is None:
        raise Http404
    result = results.participant_result(participant)
    response = render(
        request,
        "graph/receipt.html",
        {
            "deliberation": participant.deliberation,
            "card": participation.latest_card(participant),
            "result": result,
            "graph_svg": explorer.participant_svg(result),
            "token": token,
        },
    )
    # The token is the only key: keep it out of Referer headers, search engines and caches.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    return response


# --- Reports ------------------------------------------------------------------------------------


@require_POST
@rate_limited
@participant_step
def report(request, participant):
    """ "This is offensive / nonsense" about a value or story the participant was shown: a flag
    for the moderators' queue, once per person and item, a few per hour at most."""
    back_to = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back_to, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back_to = step_url("graph:vote", participant)
    if not ratelimit.allow(
        f"report:{participant.pk}", limit=settings.REPORTS_PER_HOUR, window_seconds=3600
    ):
        messages.error(request, gettext("You have sent many reports; please wait a while."))
        return redirect(back_to)
    try:
        new = moderation.report_as_participant(
            participant=participant, choice=request.POST.get("report", "")
        )
    except moderation.ModerationError as error:
        messages.error(request, str(error))
        return redirect(back_to)
    if new:
        messages.success(request, gettext("Thank you: a moderator will look at it."))
    else:
        messages.info(request, gettext("You had already reported this; a moderator will look."))
    return redirect(back_to)

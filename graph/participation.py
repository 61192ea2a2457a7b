"""The participant's steps after the interview: the wisest-values vote and the upgrade judgments.

Typed functions with keyword-only arguments, atomic, safe to call twice (a reload, a second tab).
Views call these and do nothing of substance themselves.

Decisions worth knowing when reading the results:

- A participant's *own values* (the canonical values their cards joined or chose) are never put
  before them, neither in the vote nor in a story: a vote or judgment on one's own value is a vote
  for oneself, and the method should be hard to manipulate.
- A person sees each pair of values once, in any context and in either direction, which is
  stricter than the database (it refuses the same pair twice *in a context*): a second story about
  the same two cards tells the participant little new and costs them time.
- Routing spreads evidence: stories of the participant's own question(s) first, then the pair
  with the fewest answered judgments (both directions of a pair count together, because an upgrade
  A -> B is also evidence about B -> A), ties broken by a hash of participant and hypothesis, so
  the draw is random across people but the same on every reload. The answers are counted over
  the whole deliberation, which grows with it (about 90 ms of PostgreSQL at 180,000 judgments),
  so the counts are kept ROUTING_COUNTS_SECONDS (5) in the cache for the next stories drawn:
  a story is counted once answered, some 10-30 s after it is shown, so counts a few seconds
  old spread the evidence as well as fresh ones.
- `answered_at` keeps the *first* answer (the time to answer is `answered_at - shown_at`); later
  revisions are in JudgmentRevision with their own times, and the judgment holds the latest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from elicit.cards import clean_text
from elicit.models import Participant, Question, ValuesCard
from elicit.services import ParticipationError
from graph import pipeline
from graph.models import (
    CanonicalValue,
    JudgmentRevision,
    UpgradeHypothesis,
    UpgradeJudgment,
    VoteRevision,
    WisestVote,
)
from graph.services import shown_values

COMMENT_MAX_CHARS = 2000


class StepError(ParticipationError):
    """An answer that cannot be stored as given; shown to the participant with their input."""


def _draw(participant: Participant, kind: str, pk: int) -> str:
    """A tie-breaker that differs between people but not between reloads."""
    return hashlib.sha256(f"{participant.public_id}:{kind}:{pk}".encode()).hexdigest()


# --- What moderation lets participants see -----------------------------------------------------


# --- The participant's own card and values ------------------------------------------------------


def latest_card(participant: Participant) -> ValuesCard | None:
    return (
        ValuesCard.objects.filter(participant=participant)
        .select_related("question")
        .order_by("-created_at", "-id")
        .first()
    )


def own_value_ids(participant: Participant) -> set[int]:
    """The canonical values the participant's cards joined or chose."""
    ids: set[int] = set()
    for canonical, chosen in ValuesCard.objects.filter(participant=participant).values_list(
        "canonical_id", "chosen_canonical_id"
    ):
        ids.update(pk for pk in (canonical, chosen) if pk is not None)
    return ids


# --- Wisest-values vote -------------------------------------------------------------------------


def vote_question(participant: Participant) -> Question | None:
    """The question the participant last wrote a card for: the one they vote on."""
    card = latest_card(participant)
    return card.question if card is not None else None


def vote_candidates(*, participant: Participant, question: Question) -> list[CanonicalValue]:
    """Up to `wisest_vote_size` values written for the question, never the participant's own.
    The least shown values come first so that every value gets seen; the order on the page is
    shuffled per person so that no value profits from being first."""
    size = participant.deliberation.wisest_vote_size
    values = list(
        shown_values(participant.deliberation)
        .filter(cards__question=question)
        .exclude(pk__in=own_value_ids(participant))
        .annotate(times_shown=Count("shown_in_votes", distinct=True))
        .distinct()
    )
    values.sort(key=lambda v: (v.times_shown, _draw(participant, "vote", v.pk)))
    chosen: list[CanonicalValue] = list(values[:size])
    chosen.sort(key=lambda v: _draw(participant, "order", v.pk))
    return chosen


def existing_vote(*, participant: Participant, question: Question) -> WisestVote | None:
    vote = WisestVote.objects.filter(participant=participant, question=question).first()
    if vote is not None:  # the same rows, with their deliberation: not read again
        vote.participant, vote.question = participant, question
    return vote


@transaction.atomic
def start_vote(*, participant: Participant, question: Question) -> WisestVote | None:
    """The participant's vote on the question, created with the values shown the first time.
    None when fewer than two values are available: there is nothing to choose between."""
    vote = existing_vote(participant=participant, question=question)
    if vote is not None:
        return vote
    candidates = vote_candidates(participant=participant, question=question)
    if len(candidates) < 2:
        return None
    try:
        with transaction.atomic():
            vote = WisestVote.objects.create(participant=participant, question=question)
    except IntegrityError:  # two tabs opened the step at once: the first one's values stand
        return WisestVote.objects.get(participant=participant, question=question)
    vote.shown.set(candidates)
    return vote


def vote_values(vote: WisestVote) -> list[CanonicalValue]:
    """The values of the vote as the participant sees them now: those shown the first time,
    minus any hidden or merged since, or that have become their own."""
    participant = vote.participant
    shown = set(vote.shown.values_list("pk", flat=True)) - own_value_ids(participant)
    values = list(shown_values(participant.deliberation).filter(pk__in=shown))
    values.sort(key=lambda v: _draw(participant, "order", v.pk))
    return values


@transaction.atomic
def record_vote(*, vote: WisestVote, chosen_ids: Collection[int]) -> WisestVote:
    """Store the values the participant holds wisest: at least one, all among those shown.
    Changing one's answer replaces it on the vote and appends it to the vote's history
    (VoteRevision); `answered_at` keeps the time of the first answer. Sending the same choice
    again stores it once."""
    allowed = {v.pk: v for v in vote_values(vote)}
    chosen = set(chosen_ids)
    if not chosen:
        raise StepError(_("Please choose at least one value."))
    if not chosen <= allowed.keys():
        raise StepError(_("Please choose among the values shown."))
    vote = WisestVote.objects.select_for_update().get(pk=vote.pk)
    if vote.answered_at is not None and set(vote.chosen.values_list("pk", flat=True)) == chosen:
        return vote  # a resubmitted form, not a new opinion
    vote.chosen.set(chosen)
    revision = VoteRevision.objects.create(
        vote=vote,
        chosen_titles=[{"id": pk, "title": allowed[pk].title} for pk in sorted(chosen)],
    )
    revision.chosen.set(chosen)
    if vote.answered_at is None:
        vote.answered_at = timezone.now()
        vote.save(update_fields=["answered_at"])
    return vote


def vote_history(vote: WisestVote) -> list[VoteRevision]:
    return list(vote.revisions.order_by("created_at", "id"))


# --- Upgrade judgments --------------------------------------------------------------------------


def answered_count(participant: Participant) -> int:
    return UpgradeJudgment.objects.filter(participant=participant).exclude(verdict="").count()


def judgments_left(participant: Participant, answered: int | None = None) -> int:
    """How many more stories the participant is asked to judge (0 when they are done);
    `answered`: their answered_count, when the caller has it."""
    wanted = participant.deliberation.judgments_per_participant
    return max(0, wanted - (answered_count(participant) if answered is None else answered))


def _showable(participant: Participant, own: set[int] | None = None):
    """Hypotheses that may be shown to the participant: not hidden, both values visible, none
    of them the participant's own (`own`: their own_value_ids, when the caller has them)."""
    deliberation = participant.deliberation
    own = own_value_ids(participant) if own is None else own
    visible = shown_values(deliberation).exclude(pk__in=own)
    return UpgradeHypothesis.objects.filter(
        deliberation=deliberation,
        hidden_at__isnull=True,
        from_value__in=visible,
        to_value__in=visible,
    )


def _stories():
    """Judgments with what their story page shows (the situation and the two values)."""
    return UpgradeJudgment.objects.select_related(
        "hypothesis__context", "hypothesis__from_value", "hypothesis__to_value"
    )


def _pending(participant: Participant, own: set[int] | None = None) -> UpgradeJudgment | None:
    """A story shown but not answered yet (a reload shows it again), if it may still be shown."""
    return (
        _stories()
        .filter(participant=participant, verdict="", hypothesis__in=_showable(participant, own))
        .order_by("shown_at", "id")
        .first()
    )


def _unseen(participant: Participant, own: set[int] | None = None):
    """Hypotheses the participant may still be shown: showable, of a pair not shown to them."""
    seen_pairs = UpgradeJudgment.objects.filter(participant=participant).values("pair_key")
    return _showable(participant, own).exclude(pair_key__in=seen_pairs)


def pairs_left(participant: Participant, own: set[int] | None = None) -> int:
    """How many pairs of values the participant may still be shown a story about. Counted by
    the database: the routing's order (which weighs every judgment of the deliberation) is
    only needed to draw the next story, not to count what is left."""
    return _unseen(participant, own).values("pair_key").distinct().count()


def answer_counts(deliberation_id: int) -> list[tuple[int, int, str, int]]:
    """(hypothesis, context, pair key, answers) for every hypothesis of the deliberation with
    answers, banned participants' not counted: one pass over its judgments, kept in the cache
    for ROUTING_COUNTS_SECONDS (0: read every time; see the module docstring)."""
    seconds = settings.ROUTING_COUNTS_SECONDS
    key = f"routing:answer-counts:{deliberation_id}"
    if seconds and (kept := cache.get(key)) is not None:
        return kept
    counts = list(
        UpgradeJudgment.objects.filter(
            hypothesis__deliberation_id=deliberation_id, participant__banned_at__isnull=True
        )
        .exclude(verdict="")
        .values("hypothesis_id", "context_id", "pair_key")
        .annotate(n=Count("id"))
        .values_list("hypothesis_id", "context_id", "pair_key", "n")
    )
    if seconds:
        cache.set(key, counts, seconds)
    return counts


def routing_order(participant: Participant, own: set[int] | None = None) -> list[UpgradeHypothesis]:
    """Hypotheses the participant may still be shown, best first (see the module docstring);
    `own`: their own_value_ids, when the caller has them."""
    # Only what the order and the drawing need: a story's text is not read to rank it.
    candidates = list(_unseen(participant, own).only("id", "context_id", "pair_key"))
    if not candidates:
        return []
    # A pair's count is the sum over its hypotheses of the same context.
    answered = answer_counts(participant.deliberation_id)
    per_pair: dict[tuple[int, str], int] = {}
    per_hypothesis: dict[int, int] = {}
    for hypothesis_id, context_id, pair_key, n in answered:
        per_hypothesis[hypothesis_id] = per_hypothesis.get(hypothesis_id, 0) + n
        per_pair[(context_id, pair_key)] = per_pair.get((context_id, pair_key), 0) + n
    my_contexts = set(
        Question.objects.filter(cards__participant=participant).values_list("contexts", flat=True)
    )

    def priority(h: UpgradeHypothesis) -> tuple:
        return (
            h.context_id not in my_contexts,
            per_pair.get((h.context_id, h.pair_key), 0),
            per_hypothesis.get(h.pk, 0),
            _draw(participant, "hypothesis", h.pk),
        )

    return sorted(candidates, key=priority)


@transaction.atomic
def next_judgment(*, participant: Participant) -> UpgradeJudgment | None:
    """The story to show the participant now: the one they were shown and have not answered,
    else a new one chosen by the routing. None when they have judged enough or nothing is left.
    Showing a story creates its judgment with an empty verdict, so the time to answer is known
    and the same pair is never drawn again."""
    story = next_story(participant=participant)
    return story[0] if story is not None else None


@transaction.atomic
def next_story(*, participant: Participant) -> tuple[UpgradeJudgment, tuple[int, int]] | None:
    """next_judgment with its place in the participant's stories ((n, of), as story_progress
    gives it), from what choosing it already read."""
    answered = answered_count(participant)
    left = judgments_left(participant, answered)
    if left == 0:
        return None
    # Serialises a participant's concurrent requests on databases that lock rows.
    Participant.objects.select_for_update().filter(pk=participant.pk).first()
    own = own_value_ids(participant)
    pending = _pending(participant, own)
    pairs: int | None = None  # pairs left besides the one on screen, when known
    if pending is None:
        order = routing_order(participant, own)
        for hypothesis in order:
            try:
                with transaction.atomic():
                    drawn = UpgradeJudgment.objects.create(
                        participant=participant,
                        hypothesis=hypothesis,
                        context_id=hypothesis.context_id,
                        pair_key=hypothesis.pair_key,
                    )
            except IntegrityError:
                # Another request of the same person drew this pair first: show what it drew.
                pending = _pending(participant, own)
                if pending is not None:
                    break
                continue
            # Under the participant's lock nothing else was pending: the story drawn is the one
            # to show (read with what its page shows).
            pending = _stories().get(pk=drawn.pk)
            # The routing ranked every pair still unseen; the one drawn is now on screen.
            pairs = len({h.pair_key for h in order}) - 1
            break
    if pending is None:
        return None
    if pairs is None:
        pairs = pairs_left(participant, own)
    return pending, _progress(answered, left, pairs, shown=True)


def _progress(answered: int, left: int, pairs: int, *, shown: bool) -> tuple[int, int]:
    """(n, of): the story on screen (`shown`) and the `pairs` left besides it, of which the
    participant is asked at most the `left` judgments they still owe."""
    return answered + 1, answered + min(left, pairs + shown)


def story_progress(participant: Participant) -> tuple[int, int]:
    """(n, of) for "Story n of m" while the participant judges the story shown now: m counts
    the stories they will actually be asked, which is fewer than the deliberation asks for
    when fewer pairs are left for them (each pair is shown to a person once)."""
    answered = answered_count(participant)
    left = judgments_left(participant, answered)
    own = own_value_ids(participant)
    shown = _pending(participant, own) is not None  # the story on screen: its pair is used
    return _progress(answered, left, pairs_left(participant, own), shown=shown)


def own_judgment(*, participant: Participant, judgment_id: int) -> UpgradeJudgment | None:
    """One of the participant's judgments, if it may still be shown to them."""
    return (
        _stories()
        .filter(pk=judgment_id, participant=participant, hypothesis__hidden_at__isnull=True)
        .first()
    )


def answered_judgments(participant: Participant) -> list[UpgradeJudgment]:
    """The participant's answered judgments, in the order they were shown, for revising."""
    return list(
        _stories()
        .filter(participant=participant, hypothesis__hidden_at__isnull=True)
        .exclude(verdict="")
        .annotate(revision_count=Count("revisions"))
        .order_by("shown_at", "id")
    )


@dataclass(frozen=True)
class Answer:
    verdict: str
    comment: str


def clean_answer(*, verdict: str, comment: str) -> Answer:
    """Check an answer as the participant gave it; raises StepError with what to change."""
    if verdict not in UpgradeJudgment.Verdict.values:
        raise StepError(_("Please say whether this person became wiser, or that you are not sure."))
    comment = clean_text(comment or "")
    if len(comment) > COMMENT_MAX_CHARS:
        raise StepError(
            _("Your comment is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(comment), "limit": COMMENT_MAX_CHARS}
        )
    return Answer(verdict=verdict, comment=comment)


@transaction.atomic
def answer_judgment(
    *, judgment: UpgradeJudgment, verdict: str, comment: str = ""
) -> UpgradeJudgment:
    """Answer a story, or revise an earlier answer. Every answer is appended to the judgment's
    history; the judgment holds the latest. Sending the same answer twice stores it once."""
    answer = clean_answer(verdict=verdict, comment=comment)
    # The judgment as the caller read it (own_judgment: with its hypothesis) names the
    # deliberation; the row locked below is read without it.
    deliberation_id = judgment.hypothesis.deliberation_id
    judgment = UpgradeJudgment.objects.select_for_update().get(pk=judgment.pk)
    if (judgment.verdict, judgment.comment) == (answer.verdict, answer.comment):
        return judgment  # a resubmitted form, not a new opinion
    judgment.verdict = answer.verdict
    judgment.comment = answer.comment
    fields = ["verdict", "comment"]
    if judgment.answered_at is None:
        judgment.answered_at = timezone.now()
        fields.append("answered_at")
    judgment.save(update_fields=fields)
    JudgmentRevision.objects.create(
        judgment=judgment, verdict=answer.verdict, comment=answer.comment
    )
    transaction.on_commit(lambda: pipeline.queue_pipeline_if_due(deliberation_id=deliberation_id))
    return judgment


def judgment_history(judgment: UpgradeJudgment) -> list[JudgmentRevision]:
    return list(judgment.revisions.order_by("created_at", "id"))

"""The alignment target of a deliberation: per context, the winning value(s) of a scoring run,
with their attentional policies and their provenance (the canonical value, the cards merged
into it, the interviews those cards came from, and the judged edges and judgments that made it
win). `alignment_target` builds it as a plain dict (target.json); `target_markdown` renders it
as a Markdown document a model builder can paste into a system prompt.

The winners, scores and counts are the run's as stored; nothing is recomputed. The winners are
those of the run's primary estimator: Bradley-Terry when the run's estimator is Bradley-Terry
and its results carry them, PageRank (the reference method) otherwise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _

from elicit.models import Context, Participant, Question, ValuesCard
from graph import pipeline
from graph.exports import (
    FORMAT_VERSION,
    edge_rows,
    pseudonym,
    run_summary,
    value_scores,
)
from graph.models import CanonicalValue, DedupDecision, ScoringRun, UpgradeJudgment


def _winners(context: dict[str, Any], run: ScoringRun) -> tuple[str, list[int]]:
    """The winners of the run's primary estimator (``results["primary"]``, else the run's
    ``estimator``), falling back to PageRank's when the run has no Bradley-Terry fit."""
    primary = (run.results or {}).get("primary") or run.estimator
    bt = context.get("bradley_terry")
    if primary == ScoringRun.Estimator.BRADLEY_TERRY and bt and "winners" in bt:
        return "bradley_terry", list(bt["winners"])
    return "pagerank", list(context.get("winners", []))


def alignment_target(run: ScoringRun) -> dict[str, Any]:
    deliberation = run.deliberation
    results = run.results or {}
    stored_contexts = results.get("contexts", [])
    edges = edge_rows(results)
    chosen = {c["context_id"]: _winners(c, run) for c in stored_contexts}
    winner_ids = {v for _method, ids in chosen.values() for v in ids}

    values = CanonicalValue.objects.in_bulk(winner_ids)
    merged: dict[int, list[int]] = defaultdict(list)
    for pk, into in CanonicalValue.objects.filter(merged_into__in=winner_ids).values_list(
        "pk", "merged_into_id"
    ):
        merged[into].append(pk)
    cards_of = _cards(deliberation.pk, winner_ids, merged)
    judgments_of = _judgments(run, winner_ids)
    texts = {c.pk: c for c in Context.objects.filter(deliberation=deliberation)}
    questions = defaultdict(list)
    for question in Question.objects.filter(deliberation=deliberation).prefetch_related("contexts"):
        for context in question.contexts.all():
            questions[context.pk].append({"slug": question.slug, "text": question.text})

    contexts = []
    for stored in stored_contexts:
        context_id = stored["context_id"]
        method, ids = chosen[context_id]
        scores = value_scores(stored)
        ranked = sorted(scores, key=lambda v: -scores[v]["score"])
        winners = []
        for value_id in ids:
            value = values.get(value_id)
            shown = value is not None and value.hidden_at is None
            entry = {
                "value_id": value_id,
                "title": value.title if value is not None and shown else "",
                "description": value.description if value is not None and shown else "",
                "policies": list(value.policies) if value is not None and shown else [],
                "hidden": not shown,
                "rank": ranked.index(value_id) + 1 if value_id in scores else None,
                **scores.get(value_id, {}),
                "provenance": {
                    "canonical_value_id": value_id,
                    "merged_values": sorted(merged.get(value_id, [])),
                    "cards": cards_of.get(value_id, []),
                    "interviews": sorted(
                        {c["interview_id"] for c in cards_of.get(value_id, [])} - {None}
                    ),
                    "edges_in": [
                        e for e in edges if e["context"] == context_id and e["to_value"] == value_id
                    ],
                    "edges_out": [
                        e
                        for e in edges
                        if e["context"] == context_id and e["from_value"] == value_id
                    ],
                    "judgment_ids": judgments_of.get((context_id, value_id), []),
                },
            }
            winners.append(entry)
        found = texts.get(context_id)
        contexts.append(
            {
                "context_id": context_id,
                "text": found.text if found else "",
                "questions": questions.get(context_id, []),
                "support": stored.get("support"),
                "z_score": stored.get("z_score"),
                "ratio": stored.get("ratio"),
                "n_values": len(stored.get("values", [])),
                "n_edges": stored.get("n_edges"),
                "winners_by": method,
                **(
                    {
                        "estimators_agree": stored.get("estimators_agree"),
                        "bt_margin_z": stored["bradley_terry"].get("margin_z"),
                    }
                    if stored.get("bradley_terry")
                    else {}
                ),
                "winners": winners,
            }
        )
    return {
        "format": "moralgraph.alignment-target",
        "format_version": FORMAT_VERSION,
        "deliberation": {"slug": deliberation.slug, "title": deliberation.title},
        "run": run_summary(run),
        "contexts": contexts,
    }


def _cards(deliberation_id: int, winner_ids: set[int], merged: dict[int, list[int]]):
    """The cards behind each winner (its own and those of values merged into it), with how
    deduplication placed them."""
    owner = {pk: into for into, pks in merged.items() for pk in pks}
    owner.update({pk: pk for pk in winner_ids})
    cards = (
        ValuesCard.objects.filter(canonical_id__in=owner)
        .select_related("participant", "question")
        .order_by("pk")
    )
    decisions = dict(
        DedupDecision.objects.filter(card__in=cards, undone_at__isnull=True).values_list(
            "card_id", "method"
        )
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for card in cards:
        hidden = card.approval == ValuesCard.Approval.HIDDEN
        participant = card.participant
        out[owner[card.canonical_id]].append(
            {
                "card_id": card.pk,
                "title": "" if hidden else card.title,
                "hidden": hidden,
                "participant": pseudonym(deliberation_id, participant.public_id)
                if participant
                else None,
                "participant_banned": bool(participant and participant.banned_at),
                "question": card.question.slug,
                "interview_id": card.interview_id,
                "canonical_id": card.canonical_id,
                "dedup_method": decisions.get(card.pk, ""),
            }
        )
    return out


def _judgments(run: ScoringRun, winner_ids: set[int]) -> dict[tuple[int, int], list[int]]:
    """Ids of the judgments on each winner's edges, in its context, of the kind the run counted:
    answered by the time the run finished, on a visible hypothesis, by a participant not banned,
    and not under an open vote-quality flag unless the run included flagged votes. The run's
    counts are the authority; a judgment revised since then keeps its id here, and its current
    verdict is in tables.zip (judgments.csv)."""
    answered_by = run.finished_at or run.started_at
    rows = (
        UpgradeJudgment.objects.filter(
            hypothesis__deliberation=run.deliberation,
            hypothesis__hidden_at__isnull=True,
            participant__banned_at__isnull=True,
            answered_at__lte=answered_by,
        )
        .exclude(verdict="")
        .filter(Q(hypothesis__from_value__in=winner_ids) | Q(hypothesis__to_value__in=winner_ids))
        .order_by("pk")
        .values_list(
            "pk", "participant_id", "context_id", "hypothesis__from_value", "hypothesis__to_value"
        )
    )
    flagged_judgments: set[int] = set()
    flagged_participants: set[int] = set()
    if not run.include_flagged:
        flagged_judgments = pipeline._open_vote_quality_flags(run.deliberation, UpgradeJudgment)
        flagged_participants = pipeline._open_vote_quality_flags(run.deliberation, Participant)
    out: dict[tuple[int, int], list[int]] = defaultdict(list)
    for pk, participant, context, a, b in rows:
        if pk in flagged_judgments or participant in flagged_participants:
            continue
        for value in {a, b} & winner_ids:
            out[(context, value)].append(pk)
    return out


# --- Markdown --------------------------------------------------------------------------------

# Backslash-escaping these ASCII punctuation characters makes CommonMark render them literally:
# no HTML tag, entity, link, image, code span, emphasis or table cell can come from
# participants' text. Text is collapsed onto one line, and a character that would open a block
# (heading, list, quote, rule) at the start of a line is escaped too.
_MD_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
_MD_BLOCK_START = re.compile(r"^(\d*)([#+\-=.)])")


def md_escape(text: Any) -> str:
    """Participant text as inert Markdown: one line, special characters escaped."""
    escaped = _MD_INLINE.sub(r"\\\1", " ".join(str(text).split()))
    match = _MD_BLOCK_START.match(escaped)
    if match and (match.group(1) == "") == (match.group(2) in "#+-="):
        escaped = match.group(1) + "\\" + escaped[len(match.group(1)) :]
    return escaped


def _fmt(number: Any) -> str:
    return "n/a" if number is None else f"{number:.3g}"


def target_markdown(target: dict[str, Any]) -> str:
    run = target["run"]
    lines = [
        "# "
        + _("Alignment target: %(title)s") % {"title": md_escape(target["deliberation"]["title"])},
        "",
        _(
            "Scoring run %(run)s (%(estimator)s), finished %(finished)s, code version "
            "%(version)s. Per situation, the values participants judged wisest, with what a "
            "person living by each value attends to."
        )
        % {
            # Run metadata is ours (a slug, an id, a timestamp, a version), not participants'.
            "run": run["name"] or f"#{run['id']}",
            "estimator": run["estimator"],
            "finished": run["finished_at"] or "",
            "version": run["code_version"],
        },
        "",
    ]
    for context in target["contexts"]:
        lines += ["## " + md_escape(context["text"] or _("Context %d") % context["context_id"]), ""]
        if context["questions"]:
            lines.append(
                _("Questions: %s") % "; ".join(md_escape(q["text"]) for q in context["questions"])
            )
        lines += [
            _("Support: %(label)s (z = %(z)s, winner/runner-up = %(ratio)s).")
            % {
                "label": context["support"] or "n/a",
                "z": _fmt(context["z_score"]),
                "ratio": _fmt(context["ratio"]),
            },
            "",
        ]
        if not context["winners"]:
            lines += [_("No value won in this context yet."), ""]
        for winner in context["winners"]:
            lines += _winner_markdown(winner)
    return "\n".join(lines).rstrip() + "\n"


def _winner_markdown(winner: dict[str, Any]) -> list[str]:
    if winner["hidden"]:
        lines = ["### " + _("Value %d (hidden by a moderator)") % winner["value_id"], ""]
    else:
        lines = [
            "### " + md_escape(winner["title"]),
            "",
            md_escape(winner["description"]),
            "",
            _("Attend to:"),
            *("- " + md_escape(p) for p in winner["policies"]),
            "",
        ]
    prov = winner["provenance"]
    upgrades = sum(e.get("upgrade", 0) for e in prov["edges_in"])
    lines += [
        _(
            "Provenance: canonical value %(value)d, score %(score)s (rank %(rank)s); "
            "%(cards)d cards from interviews %(interviews)s; %(edges)d judged edges into it "
            "with %(upgrades)d upgrade votes; judgments %(judgments)s."
        )
        % {
            "value": prov["canonical_value_id"],
            "score": _fmt(winner.get("score")),
            "rank": winner.get("rank") or "n/a",
            "cards": len(prov["cards"]),
            "interviews": ", ".join(str(i) for i in prov["interviews"]) or "none",
            "edges": len(prov["edges_in"]),
            "upgrades": upgrades,
            "judgments": ", ".join(str(j) for j in prov["judgment_ids"]) or "none",
        },
        "",
    ]
    return lines

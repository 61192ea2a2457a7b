"""Services of the background pipeline: deduplicate new cards, write upgrade hypotheses, score.

Each step is a typed function with keyword-only arguments that records its work in a
`PipelineJob` row: queued, running with progress, failed with its reason, or done. A researcher
watches the row; an admin re-runs a failed one (`rerun_job`). Every step is safe to run twice:

- deduplication decides each card once (`graph.services.deduplicate`);
- hypotheses are written per pair and context at most once (the database refuses a second
  (context, from, to), and we skip a pair that exists in either direction);
- scoring writes a new `ScoringRun` per job, and returns the existing one when the job is
  delivered again.

Steps that call a language model are not one big transaction on purpose: each hypothesis is
committed as soon as its story is written, so a model failing in the middle of a batch loses
nothing that was already paid for, and a re-run writes only what is missing.

Tasks (graph/tasks.py) take ids and call one of these functions; `queue_job`, `rerun_job` and
`queue_pipeline` create the visible job row first and send the task when the transaction
commits.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from elicit import llm
from elicit.models import Context, Deliberation, ModerationFlag, Participant, ValuesCard
from graph import algorithms, embeddings, quality, reconciliation, services
from graph.apps import DEDUP_DELAY_SECONDS
from graph.models import (
    CanonicalValue,
    DedupDecision,
    PipelineJob,
    ScoringRun,
    UpgradeHypothesis,
    UpgradeJudgment,
    WisestVote,
    pair_key,
)

logger = logging.getLogger(__name__)

Kind = PipelineJob.Kind
Status = PipelineJob.Status

#: How many candidate pairs per context a hypotheses run makes sure exist (see `plan_pairs`).
DEFAULT_PAIRS_PER_CONTEXT = 12
#: Share of each context's planned pairs written in reverse, as controls.
DEFAULT_CONTROL_SHARE = 0.2
#: Each value proposes pairs with this many of its nearest neighbours in the context.
NEIGHBOURS_PER_VALUE = 3
#: ...and the this-many most endorsed values of the context are all paired with each other.
POPULAR_VALUES = 4
#: Queue the pipeline when this many cards arrived since the last successful hypotheses job...
NEW_CARDS_TRIGGER = 5
#: ...or this many answered judgments since the last successful scoring run.
NEW_JUDGMENTS_TRIGGER = 20
#: A queued or running pipeline job older than this is presumed dead (its worker was killed)
#: and no longer stops a new one from being queued.
STALE_AFTER = timedelta(hours=2)

#: Failures worth retrying later: the model or the network may be back. Everything else
#: ("refused", "invalid", a bug) would fail the same way again.
TRANSIENT_LLM_KINDS = frozenset({"timeout", "rate_limited", "unavailable", "broken_stream"})

RELATIONS = ("kept", "refined", "replaced")

STORY_TOOL = {
    "type": "function",
    "function": {
        "name": "write_upgrade_story",
        "description": (
            "The story of someone who lived by value A and came to live by value B in the "
            "context, and how each of A's attentional policies carries over to B."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "story": {"type": "string", "description": "Three to six sentences."},
                "policy_mapping": {
                    "type": "array",
                    "description": "One entry per attentional policy of A, in A's order.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "from": {"type": "string"},
                            "to": {"type": "string"},
                            "relation": {"type": "string", "enum": list(RELATIONS)},
                        },
                        "required": ["from", "to", "relation"],
                        "additionalProperties": False,
                    },
                },
                "direction_ok": {
                    "type": "boolean",
                    "description": "Is moving from A to B in this context plausibly wiser?",
                },
            },
            "required": ["story", "policy_mapping", "direction_ok"],
            "additionalProperties": False,
        },
    },
}


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed (tasks retry these with backoff)."""
    if isinstance(error, llm.LLMError):
        return error.kind in TRANSIENT_LLM_KINDS
    return isinstance(error, ConnectionError | TimeoutError)


def _describe(error: BaseException) -> str:
    kind = f" ({error.kind})" if isinstance(error, llm.LLMError) else ""
    return f"{type(error).__name__}{kind}: {error}"[:2000]


# --- Jobs -------------------------------------------------------------------------------------


def _claim_job(*, deliberation: Deliberation, kind: str, job_id: int | None) -> PipelineJob:
    """The job a step reports to: the given one (queued by a task, or re-run), or a new one.

    A job that is already done is returned as it is: the caller then does nothing, which is
    what makes a task delivered twice harmless. A job left "running" by a killed worker is
    taken over, since the steps themselves never do anything twice.
    """
    if job_id is None:
        return PipelineJob.objects.create(
            deliberation=deliberation, kind=kind, status=Status.RUNNING, started_at=timezone.now()
        )
    job = PipelineJob.objects.get(pk=job_id)
    if job.deliberation_id != deliberation.pk or job.kind != kind:
        raise ValueError(f"job {job_id} is not a {kind} job of deliberation {deliberation.pk}")
    if job.status != Status.DONE:
        job.status = Status.RUNNING
        job.error = ""
        job.started_at = timezone.now()
        job.finished_at = None
        job.save(update_fields=["status", "error", "started_at", "finished_at"])
    return job


def _progress(job: PipelineJob, *, done: int, total: int | None = None) -> None:
    """Save the progress (and what the step noted in params so far) for watchers."""
    job.progress_done = done
    fields = ["progress_done", "params"]
    if total is not None:
        job.progress_total = total
        fields.append("progress_total")
    job.save(update_fields=fields)


def _finish(job: PipelineJob, *, error: str = "") -> PipelineJob:
    job.status = Status.FAILED if error else Status.DONE
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at", "params"])
    return job


# --- Which values belong to which context -----------------------------------------------------


def relevant_values(deliberation: Deliberation) -> dict[int, list[int]]:
    """Context id -> ids of the visible canonical values relevant to it, ascending.

    A value is relevant to a context when one of its cards was written for a question that has
    the context. Contexts are shared across questions, so a card written for the abortion
    question counts in "When a decision has lasting consequences" for the parenting question
    too: that is what makes values comparable across questions. Cards hidden by a moderator do
    not make a value relevant. Every context of the deliberation is a key, even without values.
    """
    visible = services.visible_values(deliberation).values("pk")
    rows = (
        ValuesCard.objects.filter(deliberation=deliberation, canonical__in=visible)
        .exclude(approval=ValuesCard.Approval.HIDDEN)
        .filter(question__contexts__isnull=False)
        .values_list("question__contexts", "canonical_id")
        .distinct()
    )
    by_context: dict[int, set[int]] = {
        pk: set()
        for pk in Context.objects.filter(deliberation=deliberation).values_list("pk", flat=True)
    }
    for context_id, value_id in rows:
        by_context.setdefault(context_id, set()).add(value_id)
    return {c: sorted(values) for c, values in sorted(by_context.items())}


def _endorsements(deliberation: Deliberation) -> Counter[tuple[int, int]]:
    """(context id, value id) -> how many people endorsed the value for a question of that
    context: each card written for it, and each time it was chosen in a wisest-values vote
    (banned participants' votes do not count)."""
    counts: Counter[tuple[int, int]] = Counter()
    cards = (
        ValuesCard.objects.filter(deliberation=deliberation, canonical__isnull=False)
        .exclude(approval=ValuesCard.Approval.HIDDEN)
        .filter(question__contexts__isnull=False)
        .values_list("question__contexts", "canonical_id")
    )
    counts.update(cards)
    chosen = WisestVote.chosen.through.objects.filter(
        wisestvote__question__deliberation=deliberation,
        wisestvote__participant__banned_at__isnull=True,
        wisestvote__question__contexts__isnull=False,
    ).values_list("wisestvote__question__contexts", "canonicalvalue_id")
    counts.update(chosen)
    return counts


# --- Hypotheses -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedPair:
    """One hypothesis to make sure exists: from_value -> to_value in context."""

    context_id: int
    from_id: int
    to_id: int
    is_control: bool
    priority: float

    @property
    def key(self) -> str:
        return pair_key(self.from_id, self.to_id)


def _similarity_matrix(values: list[CanonicalValue]) -> np.ndarray:
    """Cosine similarity of every pair of values (their centroids, as deduplication sees
    them; the cards' stored vectors are reused), with the configured embedding backend."""
    if not values:
        return np.zeros((0, 0))
    matrix = services.value_vectors(values)
    product = matrix @ matrix.T
    if hasattr(product, "toarray"):
        product = product.toarray()
    return np.asarray(product, dtype=np.float64)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _control_order(context_id: int, key: str) -> str:
    """A stable pseudo-random order for picking controls, unrelated to pair priority, so that
    controls are spread over strong and weak pairs alike, and the same on every run."""
    return hashlib.sha256(f"{context_id}:{key}".encode()).hexdigest()


def plan_pairs(
    *,
    deliberation: Deliberation,
    pairs_per_context: int = DEFAULT_PAIRS_PER_CONTEXT,
    control_share: float = DEFAULT_CONTROL_SHARE,
) -> list[PlannedPair]:
    """The pairs each context should have a hypothesis for, best first (existing ones included).

    Candidates, per context, among the values relevant to it:

    - each value with its ``NEIGHBOURS_PER_VALUE`` nearest values (by embedding): an upgrade
      story between values about the same concern is one a reader can judge ("what A was
      really about"); between unrelated values it rarely is;
    - every pair among the ``POPULAR_VALUES`` most endorsed values (cards written plus
      wisest-value choices): the values likely to win need evidence most.

    Priority = similarity + (endorsements of both) / (2 * most endorsements in the context), so
    both criteria weigh up to 1. The top ``pairs_per_context`` are planned. This is a target,
    not a batch size: a re-run plans the same pairs and writes only those still missing.

    Direction (deterministic, decided without the model so the model cannot bias which
    hypotheses exist): the forward story goes from the less endorsed value to the more
    endorsed one, i.e. it tests whether the crowd's favourite is also the wiser; on a tie,
    from the older value (lower id) to the newer. A share ``control_share`` of each context's
    planned pairs (rounded half up) is written in reverse, marked ``is_control``; which ones is
    decided by a hash of (context, pair), so the choice is stable from run to run.
    """
    by_context = relevant_values(deliberation)
    all_ids = sorted({v for values in by_context.values() for v in values})
    values = list(CanonicalValue.objects.filter(pk__in=all_ids).order_by("pk"))
    index = {v.pk: i for i, v in enumerate(values)}
    similarity = _similarity_matrix(values)
    endorsed = _endorsements(deliberation)

    plan: list[PlannedPair] = []
    for context_id, ids in by_context.items():
        if len(ids) < 2:
            continue
        support = {v: endorsed[(context_id, v)] for v in ids}
        top_support = max(support.values()) or 1
        position = {v: i for i, v in enumerate(ids)}
        local = similarity[np.ix_([index[v] for v in ids], [index[v] for v in ids])]
        candidates: set[tuple[int, int]] = set()
        for i, value_id in enumerate(ids):
            others = [j for j in range(len(ids)) if j != i]
            # Most similar first; ties by id, so the choice never depends on float noise order.
            others.sort(key=lambda j: (-local[i, j], ids[j]))
            for j in others[:NEIGHBOURS_PER_VALUE]:
                candidates.add((min(value_id, ids[j]), max(value_id, ids[j])))
        popular = sorted(ids, key=lambda v: (-support[v], v))[:POPULAR_VALUES]
        candidates.update((a, b) for a in popular for b in popular if a < b)

        priority = {
            (a, b): float(local[position[a], position[b]])
            + (support[a] + support[b]) / (2 * top_support)
            for a, b in candidates
        }
        chosen = sorted(candidates, key=lambda p: (-priority[p], p))[:pairs_per_context]
        n_controls = _round_half_up(control_share * len(chosen))
        controls = set(
            sorted(chosen, key=lambda p: _control_order(context_id, pair_key(*p)))[:n_controls]
        )
        for a, b in chosen:
            # Forward: less endorsed -> more endorsed; tie: lower id -> higher id (a < b).
            low, high = (b, a) if support[a] > support[b] else (a, b)
            is_control = (a, b) in controls
            source, target = (high, low) if is_control else (low, high)
            plan.append(PlannedPair(context_id, source, target, is_control, priority[(a, b)]))
    return plan


@dataclasses.dataclass(frozen=True)
class Story:
    text: str
    policy_mapping: list[dict[str, str]]
    direction_ok: bool | None
    model: str


def _value_block(value: CanonicalValue) -> str:
    policies = "\n".join(f"- {p}" for p in value.policies)
    return (
        f"Title: {value.title}\nDescription: {value.description}\nAttentional policies:\n{policies}"
    )


def write_story(
    *, context: Context, from_value: CanonicalValue, to_value: CanonicalValue, model: str
) -> Story:
    """One call to the model: the upgrade story A -> B in the context, and A's policies mapped.

    Values and context go in the user message, fenced as data; the instructions are the
    versioned prompt. A malformed mapping entry is dropped rather than failing the story (the
    story is what participants judge); a missing story is an "invalid" error.
    """
    prompt = llm.load_prompt("hypothesis")
    answer = llm.call_tool(
        [
            {"role": "system", "content": prompt.text},
            {
                "role": "user",
                "content": "Context:\n"
                + llm.fence(context.text)
                + "\n\nValue A (what the person lived by first):\n"
                + llm.fence(_value_block(from_value))
                + "\n\nValue B (what the person came to live by):\n"
                + llm.fence(_value_block(to_value)),
            },
        ],
        tool=STORY_TOOL,
        model=model,
        temperature=settings.LLM_TEMPERATURE,
    )
    text = answer.arguments.get("story")
    if not isinstance(text, str) or not text.strip():
        raise llm.LLMError("invalid", "The model wrote no story.")
    mapping = []
    for entry in answer.arguments.get("policy_mapping") or []:
        if not isinstance(entry, dict) or entry.get("relation") not in RELATIONS:
            continue
        mapping.append(
            {
                "from": str(entry.get("from", ""))[:500],
                "to": str(entry.get("to", ""))[:500],
                "relation": entry["relation"],
            }
        )
    direction_ok = answer.arguments.get("direction_ok")
    return Story(
        text=text.strip()[:5000],
        policy_mapping=mapping,
        direction_ok=direction_ok if isinstance(direction_ok, bool) else None,
        model=answer.model,
    )


def _store_hypothesis(
    *,
    deliberation: Deliberation,
    pair: PlannedPair,
    story: Story | None,
    prompt_version: str,
    job: PipelineJob,
) -> UpgradeHypothesis | None:
    """Write one hypothesis unless its pair exists in the context by now (in either direction).

    The context row is locked so that two runs cannot both pass the check; the unique
    constraint on (context, from, to) is the last line of defence.
    """
    try:
        with transaction.atomic():
            Context.objects.select_for_update().get(pk=pair.context_id)
            if UpgradeHypothesis.objects.filter(
                context_id=pair.context_id, pair_key=pair.key
            ).exists():
                return None
            return UpgradeHypothesis.objects.create(
                deliberation=deliberation,
                context_id=pair.context_id,
                from_value_id=pair.from_id,
                to_value_id=pair.to_id,
                is_control=pair.is_control,
                story=story.text if story else "",
                policy_mapping=story.policy_mapping if story else [],
                model=story.model if story else "",
                prompt_version=prompt_version if story else "",
                job=job,
            )
    except IntegrityError:
        return None


def generate_hypotheses(
    *,
    deliberation_id: int,
    job_id: int | None = None,
    pairs_per_context: int | None = None,
    control_share: float | None = None,
) -> PipelineJob:
    """Make sure every context has hypotheses for its planned pairs (see `plan_pairs`).

    With a language model, each missing pair costs one call that writes the story and the
    policy mapping; without one (the embedded default), the hypothesis is stored without a
    story and participants judge the two cards in the context.

    A transient model failure (timeout, rate limit, outage, broken reply) stops the batch: the
    hypotheses written so far stay, the job is marked failed with the reason, and the error is
    raised so that the task retries later; the re-run writes only the missing pairs. A
    non-transient failure on one pair (the model refused, or answered nonsense) skips that pair
    and goes on; the job then ends failed, naming the skipped pairs, so it can be re-run.

    ``pairs_per_context`` and ``control_share`` default to the job's recorded parameters (when
    re-run), else to the defaults; the values used are recorded on the job.
    """
    if pairs_per_context is not None and pairs_per_context < 0:
        raise ValueError("pairs_per_context must be >= 0")
    if control_share is not None and not 0.0 <= control_share <= 1.0:
        raise ValueError("control_share must be in [0, 1]")
    deliberation = Deliberation.objects.get(pk=deliberation_id)
    job = _claim_job(deliberation=deliberation, kind=Kind.HYPOTHESES, job_id=job_id)
    if job.status == Status.DONE:
        return job
    if pairs_per_context is None:
        pairs_per_context = int(job.params.get("pairs_per_context", DEFAULT_PAIRS_PER_CONTEXT))
    if control_share is None:
        control_share = float(job.params.get("control_share", DEFAULT_CONTROL_SHARE))
    use_llm = llm.is_configured()
    model = (deliberation.llm_model or settings.LLM_MODEL) if use_llm else ""
    prompt_version = llm.load_prompt("hypothesis").version if use_llm else ""
    job.model, job.prompt_version = model, prompt_version
    job.params = {
        **job.params,
        "pairs_per_context": pairs_per_context,
        "control_share": control_share,
        "embedding_backend": embeddings.backend().name,
        "skipped": [],  # this attempt's; a re-run tries them again
        "direction_doubted": job.params.get("direction_doubted", []),
        "written": job.params.get("written", 0),
    }
    job.save(update_fields=["model", "prompt_version", "params"])
    try:
        plan = plan_pairs(
            deliberation=deliberation,
            pairs_per_context=pairs_per_context,
            control_share=control_share,
        )
        existing = set(
            UpgradeHypothesis.objects.filter(deliberation=deliberation).values_list(
                "context_id", "pair_key"
            )
        )
        missing = [p for p in plan if (p.context_id, p.key) not in existing]
        _progress(job, done=0, total=len(missing))
        contexts = Context.objects.in_bulk({p.context_id for p in missing})
        values = CanonicalValue.objects.in_bulk({v for p in missing for v in (p.from_id, p.to_id)})
        for done, pair in enumerate(missing, start=1):
            story = None
            if use_llm:
                try:
                    story = write_story(
                        context=contexts[pair.context_id],
                        from_value=values[pair.from_id],
                        to_value=values[pair.to_id],
                        model=model,
                    )
                except llm.LLMError as error:
                    if is_transient(error):
                        raise
                    job.params["skipped"].append(
                        {
                            "context": pair.context_id,
                            "from": pair.from_id,
                            "to": pair.to_id,
                            "error": _describe(error),
                        }
                    )
                    _progress(job, done=done)
                    continue
            hypothesis = _store_hypothesis(
                deliberation=deliberation,
                pair=pair,
                story=story,
                prompt_version=prompt_version,
                job=job,
            )
            if hypothesis is not None:
                job.params["written"] += 1
                if story is not None and story.direction_ok is False:
                    # No field for it on the hypothesis: kept on the job for audit.
                    job.params["direction_doubted"].append(hypothesis.pk)
            _progress(job, done=done)
    except Exception as error:
        logger.warning("hypotheses job %s failed: %s", job.pk, _describe(error))
        _finish(
            job,
            error=_("Stopped after %(done)s of %(total)s pairs: %(error)s")
            % {"done": job.progress_done, "total": job.progress_total, "error": _describe(error)},
        )
        raise
    skipped = job.params["skipped"]
    summary = ""
    if skipped:
        summary = _("%(n)s pair(s) could not be written; the first: %(error)s") % {
            "n": len(skipped),
            "error": skipped[0]["error"],
        }
    return _finish(job, error=summary)


# --- Deduplication step -----------------------------------------------------------------------


def deduplicate_pending(*, deliberation_id: int, job_id: int | None = None) -> PipelineJob:
    """Deduplicate every card of the deliberation that has no decision in force.

    Cards younger than the delay given to participants to say "that is my value" are left to
    their own task, which runs when the delay is over. A card whose ambiguous match needs the
    judge and cannot get it (the model is down) is left undecided and counted; the others go
    on, and the job ends failed naming how many are left, so a re-run decides the rest.
    """
    deliberation = Deliberation.objects.get(pk=deliberation_id)
    job = _claim_job(deliberation=deliberation, kind=Kind.DEDUPLICATE, job_id=job_id)
    if job.status == Status.DONE:
        return job
    cutoff = timezone.now() - timedelta(seconds=DEDUP_DELAY_SECONDS)
    card_ids = list(
        ValuesCard.objects.filter(deliberation=deliberation, created_at__lte=cutoff)
        .exclude(approval=ValuesCard.Approval.HIDDEN)
        .exclude(Exists(DedupDecision.objects.filter(card=OuterRef("pk"), undone_at__isnull=True)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _progress(job, done=0, total=len(card_ids))
    failures: list[str] = []
    transient = False
    for done, card_id in enumerate(card_ids, start=1):
        try:
            services.deduplicate(card_id=card_id, job=job)
        except (llm.LLMError, ConnectionError, TimeoutError) as error:
            failures.append(f"card {card_id}: {_describe(error)}")
            transient = transient or is_transient(error)
        _progress(job, done=done)
    job.params = {
        **job.params,
        "cards": len(card_ids),
        "failed": len(failures),
        "transient": transient,
    }
    summary = ""
    if failures:
        summary = _("%(n)s card(s) left undecided; the first: %(error)s") % {
            "n": len(failures),
            "error": failures[0],
        }
    return _finish(job, error=summary)


# --- Scoring ----------------------------------------------------------------------------------


def scoring_params(overrides: Mapping[str, Any] | None = None) -> algorithms.ScoringParams:
    """The algorithm's defaults, replaced by any ``SCORING_<NAME>`` setting, then by
    *overrides*. An unknown name in *overrides* is an error, never silently ignored."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(algorithms.ScoringParams):
        setting = f"SCORING_{field.name.upper()}"
        if hasattr(settings, setting):
            values[field.name] = getattr(settings, setting)
    values.update(overrides or {})
    try:
        return algorithms.ScoringParams(**values)
    except TypeError as error:
        raise ValueError(f"unknown scoring parameter: {error}") from None


@functools.cache
def code_version() -> str:
    """The algorithm version plus the git commit, or the package version where there is no
    git checkout (a container). Never fails: a run must not be lost to a missing git."""
    suffix = ""
    git = shutil.which("git")
    if git is not None:
        try:
            # Fixed arguments, nothing from users: no untrusted input reaches the command.
            result = subprocess.run(  # noqa: S603  # nosec B603
                [git, "rev-parse", "--short", "HEAD"],
                cwd=settings.BASE_DIR,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if result.returncode == 0 and result.stdout.strip():
                suffix = "git." + result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    if not suffix:
        try:
            suffix = "pkg." + metadata.version("moralgraph")
        except metadata.PackageNotFoundError:
            suffix = "unknown"
    return f"{algorithms.ALGORITHM_VERSION}+{suffix}"[:64]


@dataclasses.dataclass(frozen=True, eq=False)
class ScoringInput:
    """What a scoring run reads: the judgments that count, the values of each context, and
    how many judgments were left out and why.

    ``columns`` is an (n, 5) int64 array, one row per judgment: participant, context, from,
    to, verdict code, sorted lexicographically (so the order of reading never matters)."""

    columns: np.ndarray
    values_by_context: dict[int, list[int]]
    excluded: dict[str, int]

    @property
    def rows(self) -> list[tuple[int, ...]]:
        """The judgments as tuples (participant, context, from, to, verdict code)."""
        return [tuple(row) for row in self.columns.tolist()]

    @property
    def digest(self) -> str:
        """sha256 of everything the results depend on besides the parameters: the sorted
        judgment rows (as little-endian int64) and the values listed for each context. The
        same input gives the same digest, whatever order it was read in."""
        digest = hashlib.sha256(np.ascontiguousarray(self.columns, dtype="<i8").tobytes())
        for context, values in sorted(self.values_by_context.items()):
            digest.update(f"|{context}:{','.join(map(str, sorted(values)))}".encode())
        return digest.hexdigest()

    def arrays(self) -> algorithms.JudgmentArrays:
        if len(self.columns) == 0:
            return algorithms.JudgmentArrays.empty()
        return algorithms.JudgmentArrays(*self.columns.T)

    def counts(self) -> dict[str, Any]:
        values = {v for vs in self.values_by_context.values() for v in vs}
        values.update(np.unique(self.columns[:, 2:4]).tolist())
        contexts = set(self.values_by_context) | set(np.unique(self.columns[:, 1]).tolist())
        return {
            "judgments": len(self.columns),
            "participants": len(np.unique(self.columns[:, 0])),
            "values": len(values),
            "contexts": len(contexts),
            "excluded": dict(self.excluded),
        }


def _open_vote_quality_flags(deliberation: Deliberation, model: type) -> np.ndarray:
    """Ids of the objects of *model* with a vote-quality flag a moderator has not resolved."""
    return np.fromiter(
        ModerationFlag.objects.filter(
            deliberation=deliberation,
            content_type=ContentType.objects.get_for_model(model),
            source=ModerationFlag.Source.VOTE_QUALITY,
            state__in=[ModerationFlag.State.OPEN, ModerationFlag.State.CLAIMED],
        ).values_list("object_id", flat=True),
        dtype=np.int64,
    )


def _fetch_int_rows(queryset: QuerySet, n_columns: int) -> np.ndarray:
    """The rows of a ``values_list`` queryset of integer (or boolean) columns as an int64
    array, straight from the database cursor: no model or tuple handling per row in Django."""
    sql, sql_params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, sql_params)
        rows = cursor.fetchall()
    if not rows:
        return np.zeros((0, n_columns), dtype=np.int64)
    return np.array(rows, dtype=np.int64).reshape(-1, n_columns)


#: Verdict -> code of `algorithms.Verdict`, computed by the database.
_VERDICT_CODE = Case(
    *(
        When(verdict=verdict, then=Value(int(algorithms.Verdict.parse(verdict))))
        for verdict in UpgradeJudgment.Verdict.values
    ),
    default=Value(-1),
    output_field=IntegerField(),
)


def read_judgments(*, deliberation: Deliberation, include_flagged: bool = False) -> ScoringInput:
    """The judgments that count, as of now.

    Counted: answered (a verdict, i.e. not merely shown), on a hypothesis not hidden, between
    values still visible (not hidden, not merged away), by a participant not banned (an erased
    participant's verdicts still count: erasure removes text, not votes). Judgments, or
    participants, with an unresolved vote-quality flag are left out unless *include_flagged*,
    so a report can be made with and without them. Each excluded judgment is counted under the
    first reason that applies: hidden, banned, flagged.

    The answered judgments are read as four integer columns from their own table (the
    database computes the verdict code), the stories and banned participants apart, and the
    rules above are numpy masks: no Python step per judgment (bench/read_judgments.py
    compares it with the loop it replaced, on the same data).
    """
    visible = np.fromiter(
        services.visible_values(deliberation).values_list("pk", flat=True), dtype=np.int64
    )
    stories = UpgradeHypothesis.objects.filter(deliberation=deliberation)
    # The stories (few) and the judgments (many) are read apart and joined in numpy: the
    # judgments' query then touches one table and returns four integer columns.
    story = _fetch_int_rows(
        stories.annotate(
            _hidden=ExpressionWrapper(Q(hidden_at__isnull=False), output_field=BooleanField())
        )
        .values_list("pk", "context_id", "from_value_id", "to_value_id", "_hidden")
        .order_by("pk"),
        5,
    )
    judgments = UpgradeJudgment.objects.filter(hypothesis__in=stories.values("pk"))
    answered = (
        judgments.exclude(verdict="")
        .annotate(_code=_VERDICT_CODE)
        .values_list("pk", "participant_id", "hypothesis_id", "_code")
        .order_by()
    )
    pk, participant, hypothesis, code = _fetch_int_rows(answered, 4).T
    if np.any(code < 0):
        raise ValueError("a judgment has an unknown verdict")
    row = np.searchsorted(story[:, 0], hypothesis)
    context, a, b, story_hidden = story[row, 1], story[row, 2], story[row, 3], story[row, 4]
    # Who is banned: the deliberation's participants, and, should a judgment come from
    # someone registered elsewhere (the app never does that), those too.
    people = _fetch_int_rows(
        Participant.objects.filter(deliberation=deliberation)
        .annotate(
            _banned=ExpressionWrapper(Q(banned_at__isnull=False), output_field=BooleanField())
        )
        .values_list("pk", "_banned")
        .order_by(),
        2,
    )
    banned_people = people[people[:, 1] != 0, 0]
    strangers = np.setdiff1d(participant, people[:, 0])
    if strangers.size:
        banned_people = np.concatenate(
            [
                banned_people,
                np.fromiter(
                    Participant.objects.filter(
                        pk__in=strangers.tolist(), banned_at__isnull=False
                    ).values_list("pk", flat=True),
                    dtype=np.int64,
                ),
            ]
        )
    hidden = (story_hidden != 0) | ~np.isin(a, visible) | ~np.isin(b, visible)
    banned = np.isin(participant, banned_people) & ~hidden
    flagged = np.zeros(len(pk), dtype=bool)
    if not include_flagged:
        flagged = np.isin(pk, _open_vote_quality_flags(deliberation, UpgradeJudgment)) | np.isin(
            participant, _open_vote_quality_flags(deliberation, Participant)
        )
    flagged &= ~hidden & ~banned
    kept = ~(hidden | banned | flagged)
    excluded = {
        "unanswered": judgments.filter(verdict="").count(),
        "hidden": int(hidden.sum()),
        "banned": int(banned.sum()),
        "flagged": int(flagged.sum()),
    }
    columns = np.stack([participant, context, a, b, code], axis=1)[kept]
    columns = columns[np.lexsort(columns.T[::-1])]
    return ScoringInput(columns, relevant_values(deliberation), excluded)


def _json_ready(value: Any) -> Any:
    """Plain JSON types all the way down: dict keys as strings (ints turned into their decimal
    string), numpy scalars as Python numbers, tuples as lists. NaN or infinity is an error
    rather than invalid JSON in the database."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number in scoring results: {value}")
    return value


def _scoring_run_row(
    *,
    deliberation: Deliberation,
    job: PipelineJob,
    name: str,
    estimator: str,
    include_flagged: bool,
) -> ScoringRun:
    """The run this job writes: its own from a previous attempt, the failed run of the same
    name (names are unique per deliberation), or a new one."""
    run = ScoringRun.objects.filter(job=job).first()
    if run is None and name:
        run = ScoringRun.objects.filter(deliberation=deliberation, name=name).first()
    if run is None:
        return ScoringRun.objects.create(
            deliberation=deliberation,
            name=name,
            estimator=estimator,
            include_flagged=include_flagged,
            code_version=code_version(),
            job=job,
        )
    if run.status != ScoringRun.Status.DONE:
        run.estimator, run.include_flagged, run.job = estimator, include_flagged, job
        run.status, run.error, run.finished_at = ScoringRun.Status.RUNNING, "", None
        run.save(
            update_fields=["estimator", "include_flagged", "job", "status", "error", "finished_at"]
        )
    return run


def _reusable_run(
    *,
    deliberation: Deliberation,
    estimator: str,
    include_flagged: bool,
    params: algorithms.ScoringParams,
    inputs: ScoringInput,
) -> ScoringRun | None:
    """The latest finished run that this one would repeat exactly: same input digest and
    input counts (so also the same exclusions), parameters, estimator, flagged-data choice
    and code version, hence the same results and the same record."""
    latest = (
        ScoringRun.objects.filter(
            deliberation=deliberation,
            status=ScoringRun.Status.DONE,
            estimator=estimator,
            include_flagged=include_flagged,
        )
        .order_by("-started_at", "-id")
        .first()
    )
    if latest is None:
        return None
    same = (
        latest.input_digest == inputs.digest
        and latest.input_counts == _json_ready(inputs.counts())
        and latest.code_version == code_version()
        and latest.params == _json_ready(params.to_dict())
        and (latest.results or {}).get("research_inputs")
        == _json_ready(reconciliation.extras_key(deliberation=deliberation, inputs=inputs))
    )
    return latest if same else None


def run_scoring(
    *,
    deliberation_id: int,
    estimator: str = ScoringRun.Estimator.PAGERANK,
    include_flagged: bool = False,
    name: str = "",
    params: Mapping[str, Any] | None = None,
    job_id: int | None = None,
) -> ScoringRun:
    """Score the deliberation's graph as of now and store the run with all it depends on.

    Both estimators run every time (weighted PageRank, the reference method, and
    Bradley-Terry; see graph/algorithms.py) and both are stored; *estimator* names the
    primary one, whose winners the run puts first (``results["primary"]``).

    Stored: the parameters (`scoring_params`: algorithm defaults, then settings, then
    *params*), the code version, the input counts (judgments, participants, values, contexts,
    and how many judgments were excluded and why), a digest of the input, and the results
    (`ScoringResult.to_dict`). The same judgments, values and parameters give the same
    results JSON, bit for bit.

    Nothing new is written when nothing changed: an unnamed run whose input digest and
    counts, parameters, estimator, include_flagged and code version equal those of the latest
    finished run of the same estimator and include_flagged returns that run (its job notes
    ``reused``). A named run always gets its own row, so a researcher can pin a result under
    a name even when it equals the latest.

    Safe to run twice: a job that already produced a run returns it, and so does a name that
    is already taken by a finished run (names identify runs; pick a new one for a new run).
    A failure (bad parameters, an unknown estimator) is recorded on the run and its job, and
    the failed run is returned.
    """
    deliberation = Deliberation.objects.get(pk=deliberation_id)
    job = _claim_job(deliberation=deliberation, kind=Kind.SCORE, job_id=job_id)
    job.params = {
        **job.params,
        "estimator": str(estimator),
        "include_flagged": include_flagged,
        "name": name,
        "params": dict(params or {}),
    }
    job.save(update_fields=["params"])
    previous = ScoringRun.objects.filter(job=job, status=ScoringRun.Status.DONE).first()
    if previous is None and name:
        previous = ScoringRun.objects.filter(
            deliberation=deliberation, name=name, status=ScoringRun.Status.DONE
        ).first()
    if previous is not None:
        if job.status != Status.DONE:
            job.params["run"] = previous.pk
            _finish(job)
        return previous
    error: Exception | None = None
    try:
        if estimator not in ScoringRun.Estimator.values:
            raise ValueError(f"unknown estimator {estimator!r}")
        chosen = scoring_params(params)
        inputs = read_judgments(deliberation=deliberation, include_flagged=include_flagged)
    except Exception as caught:
        error = caught
    if error is None and not name:
        reused = _reusable_run(
            deliberation=deliberation,
            estimator=estimator,
            include_flagged=include_flagged,
            params=chosen,
            inputs=inputs,
        )
        if reused is not None and not ScoringRun.objects.filter(job=job).exists():
            job.params["run"] = reused.pk
            job.params["reused"] = True
            _finish(job)
            return reused
    run = _scoring_run_row(
        deliberation=deliberation,
        job=job,
        name=name,
        estimator=estimator,
        include_flagged=include_flagged,
    )
    _progress(job, done=0, total=1)
    try:
        if error is not None:
            raise error
        result = algorithms.score(
            inputs.arrays(),
            chosen,
            values_by_context=inputs.values_by_context,
            primary=estimator,
        )
        results = _json_ready(result.to_dict())
        results = _json_ready(
            reconciliation.with_scoring_extras(
                results, deliberation=deliberation, inputs=inputs, params=chosen, result=result
            )
        )
    except Exception as failure:
        logger.warning("scoring run %s failed: %s", run.pk, _describe(failure))
        with transaction.atomic():
            run.status, run.error, run.finished_at = (
                ScoringRun.Status.FAILED,
                _describe(failure),
                timezone.now(),
            )
            run.save(update_fields=["status", "error", "finished_at"])
            _finish(job, error=_describe(failure))
        return run
    with transaction.atomic():
        run.params = _json_ready(chosen.to_dict())
        run.code_version = code_version()
        run.input_counts = _json_ready(inputs.counts())
        run.input_digest = inputs.digest
        run.results = results
        run.status = ScoringRun.Status.DONE
        run.finished_at = timezone.now()
        run.save()
        job.progress_done = 1
        job.params["run"] = run.pk
        job.save(update_fields=["progress_done"])
        _finish(job)
    return run


# --- Vote quality -----------------------------------------------------------------------------


def quality_settings() -> quality.QualitySettings:
    """The thresholds of the vote-quality rules, from the VOTE_QUALITY_* settings."""
    return quality.QualitySettings(
        min_seconds=settings.VOTE_QUALITY_MIN_SECONDS,
        straight_line_min=settings.VOTE_QUALITY_STRAIGHT_LINE_MIN,
        straight_line_disagree=settings.VOTE_QUALITY_STRAIGHT_LINE_DISAGREE,
        own_value_min=settings.VOTE_QUALITY_OWN_VALUE_MIN,
        group_min=settings.VOTE_QUALITY_GROUP_MIN,
        group_similarity=settings.VOTE_QUALITY_GROUP_SIMILARITY,
        group_window_seconds=settings.VOTE_QUALITY_GROUP_WINDOW_SECONDS,
        group_min_judgments=settings.VOTE_QUALITY_GROUP_MIN_JUDGMENTS,
    )


def vote_rows(deliberation: Deliberation) -> tuple[quality.VoteRows, dict[int, list[int]]]:
    """The answered judgments of the deliberation as `quality.VoteRows` (times in seconds
    since the epoch), and each participant's own values (the canonical values of their cards).
    Every answered judgment is read, banned or hidden ones included: the rules describe
    behaviour, and what counts in scoring is decided there."""
    rows = list(
        UpgradeJudgment.objects.filter(hypothesis__deliberation=deliberation)
        .exclude(verdict="")
        .exclude(answered_at__isnull=True)
        .values_list(
            "pk",
            "participant_id",
            "hypothesis_id",
            "hypothesis__context_id",
            "hypothesis__from_value_id",
            "hypothesis__to_value_id",
            "verdict",
            "shown_at",
            "answered_at",
        )
        .order_by("pk")
    )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 9
    vote = quality.VoteRows(
        judgment=columns[0],
        participant=columns[1],
        story=columns[2],
        context=columns[3],
        from_value=columns[4],
        to_value=columns[5],
        verdict=[int(algorithms.Verdict.parse(v)) for v in columns[6]],
        shown_at=[t.timestamp() for t in columns[7]],
        answered_at=[t.timestamp() for t in columns[8]],
    )
    own: dict[int, set[int]] = {}
    for participant, value in ValuesCard.objects.filter(
        deliberation=deliberation, participant__isnull=False, canonical__isnull=False
    ).values_list("participant_id", "canonical_id"):
        own.setdefault(participant, set()).add(value)
    return vote, {p: sorted(v) for p, v in own.items()}


def write_quality_flags(
    *, deliberation: Deliberation, findings: quality.QualityFindings
) -> dict[str, int]:
    """Record the findings as vote-quality flags, each (target, reason) once: a flag that
    exists, in whatever state a moderator left it, is neither duplicated nor reopened.
    Returns how many new flags each reason got."""
    written: dict[str, int] = {}
    targets = [(UpgradeJudgment, reason, ids) for reason, ids in findings.judgments.items()] + [
        (Participant, reason, ids) for reason, ids in findings.participants.items()
    ]
    for model, reason, ids in targets:
        content_type = ContentType.objects.get_for_model(model)
        existing = set(
            ModerationFlag.objects.filter(
                content_type=content_type,
                source=ModerationFlag.Source.VOTE_QUALITY,
                reason=reason,
                object_id__in=ids,
            ).values_list("object_id", flat=True)
        )
        new = [
            ModerationFlag(
                deliberation=deliberation,
                content_type=content_type,
                object_id=object_id,
                source=ModerationFlag.Source.VOTE_QUALITY,
                reason=reason,
                detail=QUALITY_DETAIL[reason],
            )
            for object_id in ids
            if object_id not in existing
        ]
        ModerationFlag.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        written[reason] = len(new)
    return written


#: What a moderator reads on each kind of vote-quality flag.
QUALITY_DETAIL = {
    quality.TOO_FAST: "Answered sooner after the story was shown than reading it allows.",
    quality.STRAIGHT_LINING: (
        "Gave the same answer to every story, against most other participants."
    ),
    quality.OWN_VALUE: "Judged stories involving their own value and always chose it.",
    quality.COORDINATED: (
        "One of a group of participants with near-identical answers in a short time window."
    ),
}


def check_vote_quality(*, deliberation_id: int, job_id: int | None = None) -> PipelineJob:
    """Run the vote-quality rules (graph/quality.py) over every answered judgment and write
    a flag for each new finding. Flags never delete anything; scoring leaves flagged data out
    unless a run includes it. Safe to run twice: existing flags are not written again."""
    deliberation = Deliberation.objects.get(pk=deliberation_id)
    job = _claim_job(deliberation=deliberation, kind=Kind.VOTE_QUALITY, job_id=job_id)
    if job.status == Status.DONE:
        return job
    try:
        rows, own = vote_rows(deliberation)
        _progress(job, done=0, total=len(rows))
        findings = quality.find_all(rows, own, quality_settings())
        with transaction.atomic():
            written = write_quality_flags(deliberation=deliberation, findings=findings)
    except Exception as error:
        logger.warning("vote-quality check failed: %s", _describe(error))
        return _finish(job, error=_describe(error))
    job.params = {
        **job.params,
        "found": {
            reason: len(ids)
            for reason, ids in {**findings.judgments, **findings.participants}.items()
        },
        "written": written,
    }
    job.progress_done = len(rows)
    return _finish(job)


def score_and_compare(*, deliberation_id: int, job_id: int | None = None) -> ScoringRun:
    """The pipeline's scoring step: the reference run, without flagged judgments; and when it
    left some out, a second run with them (in its own job), so that the results page shows
    both side by side."""
    run = run_scoring(deliberation_id=deliberation_id, job_id=job_id)
    if run.status == ScoringRun.Status.DONE and run.input_counts.get("excluded", {}).get("flagged"):
        run_scoring(deliberation_id=deliberation_id, include_flagged=True)
    return run


# --- The whole pipeline -----------------------------------------------------------------------

STEPS: tuple[tuple[str, Callable[..., Any]], ...] = (
    (Kind.DEDUPLICATE, deduplicate_pending),
    (Kind.HYPOTHESES, generate_hypotheses),
    (Kind.VOTE_QUALITY, check_vote_quality),
    (Kind.SCORE, score_and_compare),
)


def run_pipeline(*, deliberation_id: int, job_id: int | None = None) -> PipelineJob:
    """Deduplicate pending cards, write missing hypotheses, check vote quality, score: each
    step its own job.

    The pipeline's own job counts the steps (progress 0-4) and records the step jobs in
    ``params["jobs"]``. A failing step records its error in its job and the next steps still
    run (hypotheses on the values that exist, scoring on the judgments that exist). The
    pipeline job then ends failed, naming the failed steps; ``params["transient"]`` says
    whether trying again later may help. Re-running the same pipeline job skips the steps
    that are done and resumes the others in their own job rows.
    """
    deliberation = Deliberation.objects.get(pk=deliberation_id)
    parent = _claim_job(deliberation=deliberation, kind=Kind.PIPELINE, job_id=job_id)
    if parent.status == Status.DONE:
        return parent
    jobs: dict[str, int] = dict(parent.params.get("jobs", {}))
    parent.params = {**parent.params, "jobs": jobs, "transient": False}
    _progress(parent, done=0, total=len(STEPS))
    failures = []
    for done, (kind, step) in enumerate(STEPS, start=1):
        previous = PipelineJob.objects.filter(pk=jobs[kind]).first() if kind in jobs else None
        if previous is None or previous.status != Status.DONE:
            if previous is None:
                previous = PipelineJob.objects.create(
                    deliberation=deliberation, kind=kind, triggered_by=parent.triggered_by
                )
                jobs[kind] = previous.pk
                parent.save(update_fields=["params"])
            try:
                step(deliberation_id=deliberation.pk, job_id=previous.pk)
            except Exception as error:  # the next steps still run
                logger.warning("pipeline step %s failed: %s", kind, _describe(error))
                if is_transient(error):
                    parent.params["transient"] = True
                # The steps mark their job failed themselves; this covers an error before
                # they could (the database went away, say).
                PipelineJob.objects.filter(pk=previous.pk).exclude(status=Status.FAILED).update(
                    status=Status.FAILED, error=_describe(error), finished_at=timezone.now()
                )
            previous.refresh_from_db()
            if previous.status == Status.FAILED:
                failures.append(f"{Kind(kind).label}: {previous.error}")
                if previous.params.get("transient"):
                    parent.params["transient"] = True
        _progress(parent, done=done)
    return _finish(parent, error="; ".join(failures)[:5000])


# --- Queueing ---------------------------------------------------------------------------------


def _send(job: PipelineJob) -> None:
    """Send the task that runs *job* (called when the transaction that created it commits)."""
    from config.celery import BROKER_ERRORS
    from graph import tasks

    args: list[Any] = [job.deliberation_id, job.pk]
    kwargs: dict[str, Any] = {}
    task = {
        Kind.DEDUPLICATE: tasks.deduplicate_pending_task,
        Kind.HYPOTHESES: tasks.generate_hypotheses_task,
        Kind.SCORE: tasks.score_task,
        Kind.VOTE_QUALITY: tasks.check_vote_quality_task,
        Kind.PIPELINE: tasks.run_pipeline_task,
    }[Kind(job.kind)]
    if job.kind == Kind.SCORE:
        kwargs = {
            k: job.params[k]
            for k in ("estimator", "include_flagged", "name", "params")
            if k in job.params
        }
    try:
        result = task.apply_async(args=args, kwargs=kwargs)
    except BROKER_ERRORS as error:
        # Failed at once, not left "queued" with no task behind it: the dashboard shows why,
        # and the job can be run again once the broker is back.
        logger.warning("could not queue %s job %s: %s", job.kind, job.pk, error)
        PipelineJob.objects.filter(pk=job.pk).update(
            status=Status.FAILED, error=_describe(error), finished_at=timezone.now()
        )
        return
    PipelineJob.objects.filter(pk=job.pk).update(task_id=str(result.id or "")[:64])


RUNNABLE = frozenset(
    {Kind.DEDUPLICATE, Kind.HYPOTHESES, Kind.VOTE_QUALITY, Kind.SCORE, Kind.PIPELINE}
)


def queue_job(
    *,
    deliberation_id: int,
    kind: str,
    params: Mapping[str, Any] | None = None,
    triggered_by=None,
) -> PipelineJob:
    """Create a queued job, visible at once, and send its task when the transaction commits."""
    if kind not in RUNNABLE:
        raise ValueError(f"no task runs {kind} jobs")
    job = PipelineJob.objects.create(
        deliberation_id=deliberation_id,
        kind=kind,
        params=dict(params or {}),
        triggered_by=triggered_by,
    )
    transaction.on_commit(lambda: _send(job))
    return job


def rerun_job(*, job_id: int) -> bool:
    """Queue a failed job again, in the same row, so its history (and the hypotheses that cite
    it) stay together. A conditional UPDATE makes a double click queue it once. Returns
    whether it was queued."""
    job = PipelineJob.objects.filter(pk=job_id, kind__in=RUNNABLE).first()
    if job is None:
        return False
    claimed = PipelineJob.objects.filter(pk=job_id, status=Status.FAILED).update(
        status=Status.QUEUED, error="", finished_at=None
    )
    if claimed:
        job.refresh_from_db()
        transaction.on_commit(lambda: _send(job))
    return bool(claimed)


def _pipeline_in_flight(deliberation_id: int) -> bool:
    return PipelineJob.objects.filter(
        deliberation_id=deliberation_id,
        kind=Kind.PIPELINE,
        status__in=[Status.QUEUED, Status.RUNNING],
        created_at__gte=timezone.now() - STALE_AFTER,
    ).exists()


@transaction.atomic
def queue_pipeline(
    *, deliberation_id: int, reason: str = "", triggered_by=None
) -> PipelineJob | None:
    """Queue the whole pipeline unless one is already queued or running for the deliberation
    (then None). The deliberation row is locked so that two callers queue it once."""
    Deliberation.objects.select_for_update().filter(pk=deliberation_id).first()
    if _pipeline_in_flight(deliberation_id):
        return None
    return queue_job(
        deliberation_id=deliberation_id,
        kind=Kind.PIPELINE,
        params={"reason": reason},
        triggered_by=triggered_by,
    )


def _started_last(queryset: QuerySet) -> Coalesce:
    """When the latest of these jobs or runs started, for a filter (the epoch if none did)."""
    latest = queryset.filter(started_at__isnull=False).order_by("-started_at")
    return Coalesce(
        Subquery(latest.values("started_at")[:1]),
        Value(datetime(1970, 1, 1, tzinfo=UTC), output_field=DateTimeField()),
    )


def pipeline_due(*, deliberation_id: int) -> str:
    """Why the pipeline should run now ("" if it should not): at least ``NEW_CARDS_TRIGGER``
    cards since the last successful hypotheses job started, or ``NEW_JUDGMENTS_TRIGGER``
    answered judgments since the last successful scoring run started.

    Asked after every confirmed card and every answered judgment: one count each, with the
    times they count from read in the same query."""
    jobs = PipelineJob.objects.filter(deliberation_id=deliberation_id, status=Status.DONE)
    cards = ValuesCard.objects.filter(
        deliberation_id=deliberation_id,
        created_at__gte=_started_last(jobs.filter(kind=Kind.HYPOTHESES)),
    )
    if cards.count() >= NEW_CARDS_TRIGGER:
        return "new cards"
    # The last scoring *job* that finished, not the last run: a job that found nothing
    # changed (every new judgment flagged, say) reuses a run without writing one, and must
    # still count as "scored", or every later judgment would queue the pipeline again.
    runs = ScoringRun.objects.filter(deliberation_id=deliberation_id, status=ScoringRun.Status.DONE)
    judgments = UpgradeJudgment.objects.filter(
        hypothesis__deliberation_id=deliberation_id,
        answered_at__isnull=False,
        answered_at__gte=Greatest(_started_last(jobs.filter(kind=Kind.SCORE)), _started_last(runs)),
    )
    if judgments.count() >= NEW_JUDGMENTS_TRIGGER:
        return "new judgments"
    return ""


def queue_pipeline_if_due(*, deliberation_id: int) -> PipelineJob | None:
    """Queue the pipeline when enough new cards or judgments arrived (see `pipeline_due`).

    While one is queued or running (in a busy deliberation, nearly always) the answer is no
    whatever the counts say, so that is asked first: one indexed lookup instead of the two
    counts, after every card and every answered story."""
    if _pipeline_in_flight(deliberation_id):
        return None
    reason = pipeline_due(deliberation_id=deliberation_id)
    if not reason:
        return None
    return queue_pipeline(deliberation_id=deliberation_id, reason=reason)


def open_deliberation_ids() -> Iterable[int]:
    return Deliberation.objects.filter(
        status=Deliberation.Status.OPEN, pilot_of__isnull=True
    ).values_list("pk", flat=True)

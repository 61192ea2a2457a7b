"""The moral graph: canonical values, how cards were merged into them, upgrade hypotheses and the
participants' judgments of them, wisest-value votes, pipeline jobs and scoring runs.

Every decision the pipeline takes is stored with its reason so it can be audited and undone, and
every scoring run with the parameters, code version and input counts that produced it.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from elicit.models import Context, Deliberation, Participant, Question, ValuesCard


class CanonicalValue(models.Model):
    """The merged representative of cards that express the same value: a node of the graph."""

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="canonical_values"
    )
    title = models.CharField(max_length=100)
    description = models.TextField()
    policies = models.JSONField(default=list)
    # The card whose wording the value currently carries (the best wording of its cards).
    representative = models.ForeignKey(
        ValuesCard, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when a moderator merged this value into another; undone by clearing it.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_values"
    )
    hidden_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(merged_into=F("id")), name="canonical_not_merged_into_itself"
            )
        ]

    def __str__(self) -> str:
        return self.title


class CardEmbedding(models.Model):
    """A card's vector for one embedding backend and model (float32 bytes)."""

    card = models.ForeignKey(ValuesCard, on_delete=models.CASCADE, related_name="embeddings")
    backend = models.CharField(max_length=16)
    model = models.CharField(max_length=100)
    dimensions = models.PositiveIntegerField()
    vector = models.BinaryField()
    text_hash = models.CharField(max_length=64)  # re-embed when the card's wording changes
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["card", "backend", "model"], name="embedding_unique_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.backend}/{self.model} vector of card {self.card_id}"


class PipelineJob(models.Model):
    """One run of a background step, visible to researchers and admins: queued, running with
    progress, failed with its reason, or done. Also the generation run that hypotheses cite."""

    class Kind(models.TextChoices):
        DEDUPLICATE = "deduplicate", _("Merge similar values")
        HYPOTHESES = "hypotheses", _("Write upgrade stories")
        SCORE = "score", _("Score the graph")
        VOTE_QUALITY = "vote_quality", _("Check vote quality")
        PIPELINE = "pipeline", _("Whole pipeline")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    deliberation = models.ForeignKey(Deliberation, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    params = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deliberation", "kind", "status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_status_display()})"


class DedupDecision(models.Model):
    """Why a card belongs to a canonical value. Undoing a decision keeps it, marked undone."""

    class Method(models.TextChoices):
        NEW_VALUE = "new_value", _("Clearly different: new canonical value")
        AUTO_MATCH = "auto_match", _("Clearly the same: linked automatically")
        LLM_JUDGE = "llm_judge", _("Ambiguous: decided by the language-model judge")
        PARTICIPANT = "participant", _("The participant said it is their value")
        MODERATOR = "moderator", _("A moderator merged or split it")

    card = models.ForeignKey(ValuesCard, on_delete=models.CASCADE, related_name="dedup_decisions")
    canonical = models.ForeignKey(
        CanonicalValue, on_delete=models.CASCADE, related_name="dedup_decisions"
    )
    method = models.CharField(max_length=16, choices=Method.choices)
    similarity = models.FloatField(null=True, blank=True)
    nearest = models.ForeignKey(
        CanonicalValue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    job = models.ForeignKey(PipelineJob, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A card has at most one decision in force; a second run must not decide it again.
            models.UniqueConstraint(
                fields=["card"],
                condition=Q(undone_at__isnull=True),
                name="dedup_one_active_decision_per_card",
            ),
        ]

    def __str__(self) -> str:
        return f"card {self.card_id} -> value {self.canonical_id} ({self.method})"


def pair_key(a: int, b: int) -> str:
    """The unordered pair {a, b}: a hypothesis and its reverse share it."""
    low, high = sorted((a, b))
    return f"{low}-{high}"


class UpgradeHypothesis(models.Model):
    """A candidate edge A -> B in a context, with the story of someone who came to live by B."""

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="hypotheses"
    )
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="hypotheses")
    from_value = models.ForeignKey(
        CanonicalValue, on_delete=models.CASCADE, related_name="upgrades_out"
    )
    to_value = models.ForeignKey(
        CanonicalValue, on_delete=models.CASCADE, related_name="upgrades_in"
    )
    pair_key = models.CharField(max_length=64, editable=False)
    story = models.TextField(blank=True)  # empty without a language model: the cards speak
    # How each of A's policies is kept, refined or replaced in B: [{"from": ..., "to": ...,
    # "relation": "kept|refined|replaced"}].
    policy_mapping = models.JSONField(default=list, blank=True)
    is_control = models.BooleanField(default=False)  # written in reverse, as a control
    job = models.ForeignKey(PipelineJob, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["context", "from_value", "to_value"], name="hypothesis_unique_edge"
            ),
            models.CheckConstraint(
                condition=~Q(from_value=F("to_value")), name="hypothesis_distinct_values"
            ),
        ]
        indexes = [models.Index(fields=["deliberation", "context"])]

    def __str__(self) -> str:
        return f"{self.from_value} -> {self.to_value} ({self.context})"

    def save(self, *args, **kwargs):
        self.pair_key = pair_key(self.from_value_id, self.to_value_id)
        super().save(*args, **kwargs)


class UpgradeJudgment(models.Model):
    """A participant's answer to one hypothesis. Created when the story is shown (verdict still
    empty), so routing knows what each person has seen and how long they took to answer."""

    class Verdict(models.TextChoices):
        UPGRADE = "upgrade", _("Yes, this person became wiser")
        NOT_UPGRADE = "not_upgrade", _("No, not an upgrade")
        UNSURE = "unsure", _("Not sure")

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="judgments")
    hypothesis = models.ForeignKey(
        UpgradeHypothesis, on_delete=models.CASCADE, related_name="judgments"
    )
    # Denormalised from the hypothesis so the database can refuse the same pair twice for one
    # person in a context, in either direction (the reference app could show it twice).
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="+")
    pair_key = models.CharField(max_length=64)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    comment = models.TextField(blank=True)
    shown_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)  # comment hidden by a moderator

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "hypothesis"], name="judgment_one_per_hypothesis"
            ),
            models.UniqueConstraint(
                fields=["participant", "context", "pair_key"], name="judgment_pair_once"
            ),
        ]
        indexes = [models.Index(fields=["hypothesis", "verdict"])]

    def __str__(self) -> str:
        return f"{self.participant} on {self.hypothesis_id}: {self.verdict or 'not answered'}"


class JudgmentRevision(models.Model):
    """Every answer a participant gave to a hypothesis, in order; the judgment holds the last."""

    judgment = models.ForeignKey(
        UpgradeJudgment, on_delete=models.CASCADE, related_name="revisions"
    )
    verdict = models.CharField(max_length=16, choices=UpgradeJudgment.Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judgment", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.verdict} at {self.created_at:%Y-%m-%d %H:%M}"


class WisestVote(models.Model):
    """A participant's choice of the wisest among the cards shown for a question."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="wisest_votes"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="wisest_votes")
    shown = models.ManyToManyField(CanonicalValue, related_name="shown_in_votes")
    chosen = models.ManyToManyField(CanonicalValue, related_name="chosen_in_votes", blank=True)
    shown_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "question"], name="wisest_vote_once_per_question"
            )
        ]

    def __str__(self) -> str:
        return f"Wisest-values vote of {self.participant} on {self.question_id}"


class VoteRevision(models.Model):
    """Every answer a participant gave to a wisest-values vote, in order; the vote holds the
    last. Values chosen are kept as they were named then, so the history reads the same after
    a value is merged, reworded or deleted."""

    vote = models.ForeignKey(WisestVote, on_delete=models.CASCADE, related_name="revisions")
    chosen = models.ManyToManyField(CanonicalValue, related_name="+", blank=True)
    chosen_titles = models.JSONField(default=list)  # [{"id": ..., "title": ...}] at the time
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vote", "created_at", "id"]

    def __str__(self) -> str:
        titles = ", ".join(item["title"] for item in self.chosen_titles)
        return f"{titles} at {self.created_at:%Y-%m-%d %H:%M}"


class ScoringRun(models.Model):
    """One scoring of a deliberation's graph: reproducible from what it records."""

    class Estimator(models.TextChoices):
        PAGERANK = "pagerank", _("Weighted PageRank (reference method)")
        BRADLEY_TERRY = "bradley_terry", _("Bradley-Terry")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="scoring_runs"
    )
    name = models.SlugField(max_length=64, blank=True)
    estimator = models.CharField(
        max_length=16, choices=Estimator.choices, default=Estimator.PAGERANK
    )
    include_flagged = models.BooleanField(default=False)
    params = models.JSONField(default=dict)
    code_version = models.CharField(max_length=64)
    input_counts = models.JSONField(default=dict)  # judgments, values, participants read
    input_digest = models.CharField(max_length=64, blank=True)  # hash of the judgments read
    results = models.JSONField(default=dict)  # per context: scores, winners, support, edges
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    job = models.ForeignKey(PipelineJob, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deliberation", "name"],
                condition=~Q(name=""),
                name="scoring_run_unique_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_estimator_display()} run {self.pk}"


class ApiToken(models.Model):
    """Read-only access for a researcher's scripts. Only a hash of the token is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, *, user, name: str) -> tuple[ApiToken, str]:
        """Create a token; the clear text is returned once and never stored."""
        token = "mge_" + secrets.token_urlsafe(32)
        return cls.objects.create(
            user=user, name=name, token_hash=cls.hash(token), prefix=token[:8]
        ), token


class PilotRun(models.Model):
    """A pilot of a deliberation with simulated participants (graph/pilots.py): what was asked
    (simulation settings, participant counts, repeats, seed), the pilot deliberation that holds
    the simulated data, and the report (how well each estimator finds the planted truth)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="pilot_runs"
    )
    # The separate deliberation holding the simulated participants (Deliberation.pilot_of).
    pilot = models.ForeignKey(
        Deliberation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    simulation = models.JSONField(default=dict)  # settings, participants, repeats, seed
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Pilot run {self.pk} of {self.deliberation}"

"""The participant side of a deliberation: who takes part, what they said, the cards they wrote.

The graph side (canonical values, upgrade hypotheses, judgments, votes, scoring runs) lives in
graph/models.py. Moderation flags and the audit log live here because both sides write them.
Database constraints enforce what must never happen twice.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Deliberation(models.Model):
    """One elicitation run: a set of questions, their contexts, participants and settings."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")  # no new participants; results stay available

    class Access(models.TextChoices):
        PUBLIC = "public", _("Anyone with the link")
        INVITE = "invite", _("Invite links only")

    class ModerationMode(models.TextChoices):
        PERMISSIVE = "permissive", _("Permissive: visible at once, can be hidden")
        STRICT = "strict", _("Strict: cards shown to others only after approval")

    class DeletionPolicy(models.TextChoices):
        DELETE = "delete", _("Delete the participant's text")
        ANONYMISE = "anonymise", _("Keep the text, remove everything that identifies them")

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    consent_text = models.TextField(blank=True)
    language = models.CharField(max_length=16, default="en")
    estimated_minutes = models.PositiveSmallIntegerField(default=20)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.PUBLIC)
    moderation_mode = models.CharField(
        max_length=16, choices=ModerationMode.choices, default=ModerationMode.PERMISSIVE
    )
    # Optional demographic questions: [{"key": "party", "label": "...", "choices": [...],
    # "required": false}]. Validated by elicit.forms.
    demographic_fields = models.JSONField(default=list, blank=True)
    # What the participant does after the interview.
    wisest_vote_size = models.PositiveSmallIntegerField(default=6)
    judgments_per_participant = models.PositiveSmallIntegerField(default=4)
    # Panel hand-back (Prolific and similar).
    completion_code = models.CharField(max_length=64, blank=True)
    completion_redirect_url = models.URLField(blank=True)
    # Per-deliberation language-model settings; blank means the site default.
    llm_model = models.CharField(max_length=100, blank=True)
    block_flagged_messages = models.BooleanField(
        default=False, help_text=_("Stop the interview when a message is flagged by moderation.")
    )
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    deletion_policy = models.CharField(
        max_length=16, choices=DeletionPolicy.choices, default=DeletionPolicy.DELETE
    )
    # A pilot holds simulated participants only; it never mixes with a real deliberation.
    pilot_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="pilots"
    )
    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="StaffAssignment",
        related_name="deliberations",
        blank=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(wisest_vote_size__gte=2), name="deliberation_vote_size_at_least_2"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_pilot(self) -> bool:
        return self.pilot_of_id is not None


class StaffAssignment(models.Model):
    """Which researchers and moderators may work on which deliberation."""

    class Role(models.TextChoices):
        RESEARCHER = "researcher", _("Researcher")
        MODERATOR = "moderator", _("Moderator")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    deliberation = models.ForeignKey(Deliberation, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "deliberation", "role"], name="staff_assignment_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} of {self.deliberation}"


class Context(models.Model):
    """A situation in which a value applies, phrased "When ...". Shared across questions."""

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="contexts"
    )
    text = models.CharField(max_length=300)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["deliberation", "text"], name="context_unique_text")
        ]

    def __str__(self) -> str:
        return self.text


class Question(models.Model):
    """The prompt participants discuss (the reference app called it a "case")."""

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="questions"
    )
    slug = models.SlugField(max_length=64)
    text = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    contexts = models.ManyToManyField(Context, related_name="questions", blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deliberation", "slug"], name="question_unique_slug")
        ]

    def __str__(self) -> str:
        return self.text[:80]


class Invite(models.Model):
    """A single-use invite link, the only way into an invite-only deliberation."""

    deliberation = models.ForeignKey(Deliberation, on_delete=models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, default=new_token)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.note or self.token[:8]


class Participant(models.Model):
    """A pseudonymous person taking part. Panel ids are unique per deliberation (one person, one
    participant): the same panel id coming back resumes the same participant."""

    deliberation = models.ForeignKey(
        Deliberation, on_delete=models.CASCADE, related_name="participants"
    )
    # The only id that leaves the system (exports, receipts): random, carries no information.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Secret of the personal link that lets a participant come back to see their result.
    receipt_token = models.CharField(max_length=64, unique=True, default=new_token)
    panel_pid = models.CharField(max_length=128, blank=True)  # PROLIFIC_PID or generic pid
    panel_study_id = models.CharField(max_length=128, blank=True)
    panel_session_id = models.CharField(max_length=128, blank=True)
    invite = models.OneToOneField(
        Invite, null=True, blank=True, on_delete=models.SET_NULL, related_name="participant"
    )
    demographics = models.JSONField(default=dict, blank=True)
    is_simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Moderation: a banned participant's data stays, is excluded from scoring, marked in exports.
    banned_at = models.DateTimeField(null=True, blank=True)
    ban_reason = models.TextField(blank=True)
    # Privacy: set when the participant asked for deletion and their text was removed.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Panel ids (Prolific and similar) identify people outside this system: exports show
        # them only to superusers and users holding this permission.
        permissions = [("view_panel_ids", "Can see participants' panel ids in exports")]
        constraints = [
            models.UniqueConstraint(
                fields=["deliberation", "panel_pid"],
                condition=~Q(panel_pid=""),
                name="participant_unique_panel_pid",
            ),
        ]
        indexes = [models.Index(fields=["deliberation", "created_at"])]

    def __str__(self) -> str:
        return str(self.public_id)[:8]


class Interview(models.Model):
    """One participant's chat with the interviewer about one question."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("In progress")
        CARD_PROPOSED = "card_proposed", _("Card proposed")
        COMPLETED = "completed", _("Card confirmed")
        ABANDONED = "abandoned", _("Abandoned")
        BLOCKED = "blocked", _("Stopped by moderation")

    class Interviewer(models.TextChoices):
        LLM = "llm", _("Language model")
        SCRIPTED = "scripted", _("Scripted (no language model)")

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="interviews"
    )
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="interviews")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    interviewer = models.CharField(max_length=16, choices=Interviewer.choices)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # The latest card the interviewer proposed, shown inline for editing until confirmed.
    draft_card = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One value per interview, one interview per question for a participant.
            models.UniqueConstraint(
                fields=["participant", "question"], name="interview_unique_per_question"
            ),
        ]

    def __str__(self) -> str:
        return f"Interview {self.pk} ({self.participant})"


class Message(models.Model):
    """One turn of an interview. The participant's message is saved before the model is called;
    an interviewer reply is saved as it streams, so a failure leaves it marked partial."""

    class Role(models.TextChoices):
        PARTICIPANT = "participant", _("Participant")
        INTERVIEWER = "interviewer", _("Interviewer")

    class Status(models.TextChoices):
        COMPLETE = "complete", _("Complete")
        STREAMING = "streaming", _("Streaming")
        PARTIAL = "partial", _("Partial: the reply broke off")
        FAILED = "failed", _("Failed")

    interview = models.ForeignKey(Interview, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # A proposed values card, when the interviewer called its card tool in this turn.
    tool_call = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Idempotency key from the browser: a resent message is stored once.
    client_id = models.CharField(max_length=64, blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["interview", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["interview", "seq"], name="message_unique_seq"),
            models.UniqueConstraint(
                fields=["interview", "client_id"],
                condition=~Q(client_id=""),
                name="message_unique_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class ValuesCard(models.Model):
    """A value as the participant confirmed it: what they attend to when choosing well."""

    class Approval(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved")
        HIDDEN = "hidden", _("Hidden by a moderator")

    deliberation = models.ForeignKey(Deliberation, on_delete=models.CASCADE, related_name="cards")
    participant = models.ForeignKey(
        Participant, null=True, blank=True, on_delete=models.CASCADE, related_name="cards"
    )
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="cards")
    interview = models.OneToOneField(
        Interview, null=True, blank=True, on_delete=models.SET_NULL, related_name="card"
    )
    title = models.CharField(max_length=100)
    description = models.TextField(max_length=1000)
    policies = models.JSONField(default=list)  # attentional policies, 3-7 strings
    model = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    approval = models.CharField(max_length=16, choices=Approval.choices, default=Approval.APPROVED)
    # Which canonical value this card was merged into (set by deduplication in graph/).
    canonical = models.ForeignKey(
        "graph.CanonicalValue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cards",
    )
    # The participant said "that is my value" for this canonical value before saving.
    chosen_canonical = models.ForeignKey(
        "graph.CanonicalValue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chosen_by_cards",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(title=""), name="card_title_not_empty"),
        ]
        indexes = [models.Index(fields=["deliberation", "canonical"])]

    def __str__(self) -> str:
        return self.title


class CardRevision(models.Model):
    """The wording of a card before an edit (by the participant or a moderator)."""

    card = models.ForeignKey(ValuesCard, on_delete=models.CASCADE, related_name="revisions")
    title = models.CharField(max_length=100)
    description = models.TextField()
    policies = models.JSONField(default=list)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["card", "created_at"]

    def __str__(self) -> str:
        return f"{self.title} (before {self.created_at:%Y-%m-%d %H:%M})"


class SurveyResponse(models.Model):
    """The legitimacy survey of the 2024 trial, on a 5-point agreement scale."""

    participant = models.OneToOneField(Participant, on_delete=models.CASCADE, related_name="survey")
    felt_represented = models.PositiveSmallIntegerField(null=True, blank=True)
    graph_fair = models.PositiveSmallIntegerField(null=True, blank=True)
    clarified_thinking = models.PositiveSmallIntegerField(null=True, blank=True)
    trust_process = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(**{f"{field}__isnull": True})
                | Q(**{f"{field}__gte": 1, f"{field}__lte": 5}),
                name=f"survey_{field}_1_to_5",
            )
            for field in ("felt_represented", "graph_fair", "clarified_thinking", "trust_process")
        ]

    def __str__(self) -> str:
        return f"Survey of {self.participant}"


class ModerationFlag(models.Model):
    """Something a moderator should look at. Flags never delete anything."""

    class Source(models.TextChoices):
        AUTOMATIC = "automatic", _("Automatic moderation check")
        VOTE_QUALITY = "vote_quality", _("Vote-quality rule")
        REPORT = "report", _("Participant report")
        MODERATOR = "moderator", _("Moderator")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        CLAIMED = "claimed", _("Being reviewed")
        APPROVED = "approved", _("Approved")
        ACTIONED = "actioned", _("Action taken")

    deliberation = models.ForeignKey(Deliberation, on_delete=models.CASCADE, related_name="flags")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    source = models.CharField(max_length=16, choices=Source.choices)
    reason = models.CharField(max_length=64)  # e.g. "harassment", "too_fast", "offensive"
    detail = models.TextField(blank=True)
    reporter = models.ForeignKey(
        Participant, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_flags",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # A rule or check flags an item for a reason once; a participant reports it once.
            models.UniqueConstraint(
                fields=["content_type", "object_id", "source", "reason"],
                condition=~Q(source="report"),
                name="flag_unique_per_reason",
            ),
            models.UniqueConstraint(
                fields=["content_type", "object_id", "reporter"],
                condition=Q(source="report"),
                name="flag_unique_per_reporter",
            ),
        ]
        indexes = [
            models.Index(fields=["deliberation", "state"]),
            models.Index(fields=["content_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()}: {self.reason}"


class ModerationAction(models.Model):
    """The append-only audit log: who did what, when, why, with the state before and after."""

    deliberation = models.ForeignKey(
        Deliberation, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )  # null: the system (a pipeline rule, a participant's own request)
    action = models.CharField(max_length=32)  # approve, hide, restore, edit, merge, split, ban...
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.SET_NULL)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reverts = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deliberation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("The audit log is append-only: actions are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("The audit log is append-only: actions are never deleted.")

"""Admin registration of the graph side."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from elicit.admin import DeliberationAdmin as ElicitDeliberationAdmin
from elicit.models import Deliberation
from graph import models, pipeline, services


@admin.register(models.CanonicalValue)
class CanonicalValueAdmin(admin.ModelAdmin):
    list_display = ["title", "deliberation", "merged_into", "hidden_at", "created_at"]
    list_filter = ["deliberation"]
    search_fields = ["title", "description"]
    raw_id_fields = ["representative", "merged_into"]


@admin.action(description=_("Undo the selected decisions"), permissions=["change"])
def undo_dedup_decisions(modeladmin, request, queryset):
    """Undo each selected decision in force (graph.services.undo_decision): a card that joined
    a value becomes its own, a card that became a new value joins the nearest one. The undone
    decision is kept, marked with who undid it and when."""
    undone = 0
    for decision in queryset.order_by("id"):
        try:
            services.undo_decision(decision=decision, user=request.user)
        except services.UndoError as error:
            modeladmin.message_user(request, f"{decision}: {error}", messages.WARNING)
        else:
            undone += 1
    if undone:
        modeladmin.message_user(
            request,
            ngettext(
                "%(n)d decision undone and replaced.",
                "%(n)d decisions undone and replaced.",
                undone,
            )
            % {"n": undone},
            messages.SUCCESS,
        )


@admin.register(models.DedupDecision)
class DedupDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "card",
        "canonical",
        "method",
        "similarity",
        "created_at",
        "undone_at",
        "undone_by",
    ]
    list_filter = ["method", ("undone_at", admin.EmptyFieldListFilter)]
    raw_id_fields = ["card", "canonical", "nearest", "job", "undone_by"]
    actions = [undo_dedup_decisions]


@admin.register(models.UpgradeHypothesis)
class UpgradeHypothesisAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "is_control", "created_at"]
    list_filter = ["deliberation", "is_control"]
    raw_id_fields = ["from_value", "to_value", "job"]


class JudgmentRevisionInline(admin.TabularInline):
    model = models.JudgmentRevision
    extra = 0
    readonly_fields = ["verdict", "comment", "created_at"]
    can_delete = False


@admin.register(models.UpgradeJudgment)
class UpgradeJudgmentAdmin(admin.ModelAdmin):
    list_display = ["participant", "hypothesis", "verdict", "shown_at", "answered_at"]
    list_filter = ["verdict"]
    raw_id_fields = ["participant", "hypothesis"]
    inlines = [JudgmentRevisionInline]


class VoteRevisionInline(admin.TabularInline):
    model = models.VoteRevision
    extra = 0
    fields = readonly_fields = ["chosen_titles", "created_at"]
    can_delete = False


@admin.register(models.WisestVote)
class WisestVoteAdmin(admin.ModelAdmin):
    list_display = ["participant", "question", "shown_at", "answered_at"]
    raw_id_fields = ["participant"]
    inlines = [VoteRevisionInline]


@admin.register(models.PipelineJob)
class PipelineJobAdmin(admin.ModelAdmin):
    list_display = [
        "kind",
        "deliberation",
        "status",
        "progress_done",
        "progress_total",
        "created_at",
    ]
    list_filter = ["kind", "status", "deliberation"]


@admin.register(models.ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "name", "status", "code_version", "started_at"]
    list_filter = ["deliberation", "estimator", "status"]


@admin.register(models.PilotRun)
class PilotRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "status", "created_by", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["pilot", "simulation", "report", "error", "finished_at"]


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["token_hash", "prefix"]


# --- Pipeline actions (graph/pipeline.py) -----------------------------------------------------


@admin.action(description=_("Re-run the selected failed jobs"), permissions=["change"])
def rerun_failed_jobs(modeladmin, request, queryset):
    """Queue each selected failed job again in its own row (its history stays together). Jobs
    that did not fail, or that no task runs, are left alone and counted."""
    with transaction.atomic():
        queued = sum(pipeline.rerun_job(job_id=pk) for pk in queryset.values_list("pk", flat=True))
    skipped = queryset.count() - queued
    modeladmin.message_user(
        request,
        ngettext("%(n)d job queued again.", "%(n)d jobs queued again.", queued) % {"n": queued},
        messages.SUCCESS,
    )
    if skipped:
        modeladmin.message_user(
            request,
            ngettext(
                "%(n)d job was not re-run: only failed jobs of the pipeline can be.",
                "%(n)d jobs were not re-run: only failed jobs of the pipeline can be.",
                skipped,
            )
            % {"n": skipped},
            messages.WARNING,
        )


@admin.action(
    description=_("Run the whole pipeline now for these jobs' deliberations"),
    permissions=["change"],
)
def run_pipeline_now(modeladmin, request, queryset):
    """A trigger from the admin: queue the pipeline once per deliberation of the selection
    (not when one is already queued or running)."""
    queue_pipelines(modeladmin, request, queryset.values_list("deliberation_id", flat=True))


def queue_pipelines(modeladmin, request, deliberation_ids) -> None:
    queued = 0
    for deliberation_id in sorted(set(deliberation_ids)):
        with transaction.atomic():
            job = pipeline.queue_pipeline(
                deliberation_id=deliberation_id, reason="admin", triggered_by=request.user
            )
        queued += job is not None
    modeladmin.message_user(
        request,
        ngettext(
            "The pipeline was queued for %(n)d deliberation; its progress shows below.",
            "The pipeline was queued for %(n)d deliberations; their progress shows below.",
            queued,
        )
        % {"n": queued},
        messages.SUCCESS if queued else messages.WARNING,
    )


PipelineJobAdmin.actions = [rerun_failed_jobs, run_pipeline_now]


class PipelineJobInline(admin.TabularInline):
    """The latest background jobs of a deliberation, to watch their progress."""

    model = models.PipelineJob
    fields = ["kind", "status", "progress_done", "progress_total", "error", "created_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at"]
    verbose_name_plural = _("Background jobs (latest first)")


@admin.action(description=_("Run the pipeline now (merge values, write stories, score)"))
def run_pipeline_for_deliberations(modeladmin, request, queryset):
    queue_pipelines(modeladmin, request, queryset.values_list("pk", flat=True))


# The Deliberation admin is elicit's; the graph side adds its pipeline to it (graph may import
# elicit, never the reverse).
admin.site.unregister(Deliberation)


@admin.register(Deliberation)
class DeliberationWithPipelineAdmin(ElicitDeliberationAdmin):
    inlines = [*ElicitDeliberationAdmin.inlines, PipelineJobInline]
    actions = [run_pipeline_for_deliberations]

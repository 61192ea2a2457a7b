"""Admin registration of the graph side."""

from django.contrib import admin

from graph import models


@admin.register(models.CanonicalValue)
class CanonicalValueAdmin(admin.ModelAdmin):
    list_display = ["title", "deliberation", "merged_into", "hidden_at", "created_at"]
    list_filter = ["deliberation"]
    search_fields = ["title", "description"]
    raw_id_fields = ["representative", "merged_into"]


@admin.register(models.DedupDecision)
class DedupDecisionAdmin(admin.ModelAdmin):
    list_display = ["card", "canonical", "method", "similarity", "created_at", "undone_at"]
    list_filter = ["method"]
    raw_id_fields = ["card", "canonical", "nearest", "job"]


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


@admin.register(models.WisestVote)
class WisestVoteAdmin(admin.ModelAdmin):
    list_display = ["participant", "question", "shown_at", "answered_at"]
    raw_id_fields = ["participant"]


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


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["token_hash", "prefix"]

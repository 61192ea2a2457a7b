"""Admin registration of the participant side. Participant text is shown escaped (Django's
default); the audit log is read-only."""

from django.contrib import admin
from django.utils.translation import gettext

from elicit import models, setup
from elicit.login import ThrottledAdminLoginForm


class ContextInline(admin.TabularInline):
    model = models.Context
    extra = 0


class QuestionInline(admin.StackedInline):
    model = models.Question
    extra = 0
    filter_horizontal = ["contexts"]


class StaffInline(admin.TabularInline):
    model = models.StaffAssignment
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Deliberation)
class DeliberationAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "status", "access", "moderation_mode", "created_at"]
    list_filter = ["status", "access", "moderation_mode"]
    search_fields = ["title", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [ContextInline, QuestionInline, StaffInline]

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # A change of the moderation settings goes to the audit log, as from the setup page.
        setup.save_settings(
            deliberation=obj, actor=request.user, via=gettext("Changed in the admin.")
        )


@admin.register(models.Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "slug", "position", "is_active"]
    list_filter = ["deliberation"]
    filter_horizontal = ["contexts"]


@admin.register(models.Context)
class ContextAdmin(admin.ModelAdmin):
    list_display = ["text", "deliberation"]
    list_filter = ["deliberation"]
    search_fields = ["text"]


@admin.register(models.Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "created_at"]
    list_filter = ["deliberation"]
    readonly_fields = ["token"]


@admin.register(models.Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["public_id", "deliberation", "created_at", "consented_at", "banned_at"]
    list_filter = ["deliberation", "is_simulated"]
    search_fields = ["public_id", "panel_pid"]
    readonly_fields = ["public_id", "receipt_token", "created_at"]


class MessageInline(admin.TabularInline):
    model = models.Message
    extra = 0
    fields = ["seq", "role", "content", "status", "prompt_tokens", "completion_tokens"]
    readonly_fields = fields
    can_delete = False


@admin.register(models.Interview)
class InterviewAdmin(admin.ModelAdmin):
    list_display = ["id", "participant", "question", "status", "interviewer", "model"]
    list_filter = ["status", "interviewer", "question__deliberation"]
    inlines = [MessageInline]


@admin.register(models.ValuesCard)
class ValuesCardAdmin(admin.ModelAdmin):
    list_display = ["title", "deliberation", "question", "approval", "canonical", "created_at"]
    list_filter = ["deliberation", "approval"]
    search_fields = ["title", "description"]
    raw_id_fields = ["participant", "interview", "canonical", "chosen_canonical"]


@admin.register(models.SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ["participant", "felt_represented", "graph_fair", "created_at"]


@admin.register(models.ModerationFlag)
class ModerationFlagAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deliberation", "content_type", "object_id", "state", "created_at"]
    list_filter = ["deliberation", "source", "state", "reason"]
    search_fields = ["reason", "detail"]


@admin.register(models.ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "target_repr", "deliberation"]
    list_filter = ["deliberation", "action"]
    search_fields = ["target_repr", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Failed logins are throttled per username and per address (elicit/login.py).
admin.site.login_form = ThrottledAdminLoginForm

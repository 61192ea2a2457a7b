"""Forms of the research area: creating a deliberation and setting it up.

The setup page holds three parts that are saved together: the deliberation's settings, its
questions (each with its contexts, one "When ..." per line) and its demographic fields. A
question row or field row left blank is ignored, so the page always offers an empty row to add
one without JavaScript.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from elicit.models import Context, Deliberation
from elicit.setup import FieldSpec, QuestionSpec

CONTEXT_MAX = Context._meta.get_field("text").max_length


class NewDeliberationForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    slug = forms.SlugField(
        label=_("Address"),
        max_length=64,
        required=False,
        help_text=_("The link participants use: /d/<address>/. Left blank, made from the title."),
    )

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug and Deliberation.objects.filter(slug=slug).exists():
            raise ValidationError(_("This address is taken; choose another."))
        return slug


class DeliberationForm(forms.ModelForm):
    completion_redirect_url = forms.URLField(
        label=_("Panel completion redirect"),
        required=False,
        assume_scheme="https",
        max_length=200,
        help_text=_("Where panel participants are sent at the end."),
    )

    class Meta:
        model = Deliberation
        fields = [
            "title",
            "description",
            "consent_text",
            "status",
            "access",
            "moderation_mode",
            "block_flagged_messages",
            "estimated_minutes",
            "wisest_vote_size",
            "judgments_per_participant",
            "completion_code",
            "completion_redirect_url",
            "llm_model",
        ]
        labels = {
            "title": _("Title"),
            "description": _("Description shown to participants"),
            "consent_text": _("Consent text"),
            "status": _("Status"),
            "access": _("Who may take part"),
            "moderation_mode": _("Moderation mode"),
            "block_flagged_messages": _("Stop an interview at a flagged message"),
            "estimated_minutes": _("Estimated minutes"),
            "wisest_vote_size": _("Values shown in the wisest-values vote"),
            "judgments_per_participant": _("Upgrade stories per participant"),
            "completion_code": _("Panel completion code"),
            "completion_redirect_url": _("Panel completion redirect"),
            "llm_model": _("Language model"),
        }
        help_texts = {
            "completion_code": _("Shown to panel participants at the end (e.g. Prolific)."),
            "completion_redirect_url": _("Where panel participants are sent at the end."),
            "llm_model": _("Blank: the site's default model."),
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "consent_text": forms.Textarea(attrs={"rows": 3}),
        }

    def clean_wisest_vote_size(self):
        size = self.cleaned_data["wisest_vote_size"]
        if size < 2:
            raise ValidationError(_("Show at least two values to choose from."))
        return size


class QuestionForm(forms.Form):
    pk = forms.IntegerField(required=False, widget=forms.HiddenInput)
    text = forms.CharField(
        label=_("Question"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    slug = forms.SlugField(label=_("Short name"), max_length=64, required=False)
    is_active = forms.BooleanField(label=_("Asked"), required=False, initial=True)
    contexts = forms.CharField(
        label=_("Contexts, one per line"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            'Each starts with "When". The same line under two questions is one shared context.'
        ),
    )

    def is_blank(self) -> bool:
        data = self.cleaned_data
        return not data.get("pk") and not data.get("text") and not data.get("contexts")

    def clean_contexts(self):
        lines = []
        for line in self.cleaned_data["contexts"].splitlines():
            line = " ".join(line.split())
            if not line:
                continue
            if len(line) > CONTEXT_MAX:
                raise ValidationError(
                    _("A context is at most %(n)d characters: %(line)s"),
                    params={"n": CONTEXT_MAX, "line": line[:60] + "…"},
                )
            if line not in lines:
                lines.append(line)
        return lines

    def clean(self):
        data = super().clean()
        if self.errors or self.is_blank():
            return data
        if not data.get("text"):
            self.add_error("text", _("Write the question, or empty the whole row."))
        if data.get("is_active") and not data.get("contexts"):
            self.add_error("contexts", _("A question that is asked needs at least one context."))
        if not data.get("slug") and data.get("text"):
            data["slug"] = slugify(data["text"])[:64] or "question"
        return data

    def spec(self) -> QuestionSpec:
        data = self.cleaned_data
        return QuestionSpec(
            pk=data.get("pk"),
            text=data["text"].strip(),
            slug=data["slug"],
            is_active=data["is_active"],
            contexts=tuple(data["contexts"]),
        )


class RowFormSet(forms.BaseFormSet):
    """Rows of which the blank ones are ignored, and whose *unique* field must differ."""

    unique: str
    duplicate_message: str

    def clean(self):
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.rows():
            value = form.cleaned_data[self.unique]
            if value in seen:
                form.add_error(self.unique, self.duplicate_message)
            seen.add(value)

    def rows(self) -> list:
        return [form for form in self.forms if not form.is_blank()]

    def specs(self) -> list:
        return [form.spec() for form in self.rows()]


class BaseQuestionFormSet(RowFormSet):
    unique = "slug"
    duplicate_message = _("Two questions cannot have the same short name.")


QuestionFormSet = forms.formset_factory(QuestionForm, formset=BaseQuestionFormSet, extra=1)


class FieldForm(forms.Form):
    key = forms.SlugField(label=_("Key"), max_length=40, required=False)
    label = forms.CharField(label=_("Question asked"), max_length=200, required=False)
    choices = forms.CharField(
        label=_("Choices, one per line"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Leave empty for a free answer. Only fields with choices define groups."),
    )
    required = forms.BooleanField(label=_("Required"), required=False)

    def is_blank(self) -> bool:
        data = self.cleaned_data
        return not data.get("key") and not data.get("label") and not data.get("choices")

    def clean(self):
        data = super().clean()
        if self.errors or self.is_blank():
            return data
        if not data.get("key"):
            self.add_error("key", _("Give the field a key (letters, digits, - or _)."))
        if not data.get("label"):
            self.add_error("label", _("Write the question participants see."))
        return data

    def spec(self) -> FieldSpec:
        data = self.cleaned_data
        choices = [c.strip() for c in data["choices"].splitlines() if c.strip()]
        return FieldSpec(
            key=data["key"],
            label=data["label"].strip(),
            choices=tuple(dict.fromkeys(choices)),
            required=data["required"],
        )


class BaseFieldFormSet(RowFormSet):
    unique = "key"
    duplicate_message = _("Two fields cannot have the same key.")


FieldFormSet = forms.formset_factory(FieldForm, formset=BaseFieldFormSet, extra=1)


def question_initial(deliberation: Deliberation) -> list[dict]:
    return [
        {
            "pk": q.pk,
            "text": q.text,
            "slug": q.slug,
            "is_active": q.is_active,
            "contexts": "\n".join(c.text for c in q.contexts.all()),
        }
        for q in deliberation.questions.prefetch_related("contexts")
    ]


def field_initial(deliberation: Deliberation) -> list[dict]:
    return [
        {
            "key": spec.get("key", ""),
            "label": spec.get("label", ""),
            "choices": "\n".join(spec.get("choices") or []),
            "required": bool(spec.get("required")),
        }
        for spec in deliberation.demographic_fields or []
        if isinstance(spec, dict)
    ]

"""Forms of the participant side. Errors are worded for participants; what they typed is kept."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from elicit.cards import POLICIES, CardDraft, InvalidCard, clean_text, validate_card
from elicit.models import Deliberation


class JoinForm(forms.Form):
    """Consent, the demographic questions the deliberation asks, and the panel ids of the link
    (kept in hidden fields so that they survive the consent step)."""

    consent = forms.BooleanField(
        label=_("I have read the above and agree to take part."),
        error_messages={"required": _("Please tick the box to agree before you start.")},
    )
    PROLIFIC_PID = forms.CharField(required=False, widget=forms.HiddenInput, max_length=128)
    STUDY_ID = forms.CharField(required=False, widget=forms.HiddenInput, max_length=128)
    SESSION_ID = forms.CharField(required=False, widget=forms.HiddenInput, max_length=128)
    pid = forms.CharField(required=False, widget=forms.HiddenInput, max_length=128)
    invite = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    q = forms.SlugField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, deliberation: Deliberation, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.demographic_keys: list[str] = []
        for spec in deliberation.demographic_fields or []:
            key = f"demo_{spec.get('key')}"
            choices = [(c, c) for c in spec.get("choices") or []]
            required = bool(spec.get("required"))
            label = spec.get("label") or spec.get("key")
            if choices:
                field: forms.Field = forms.ChoiceField(
                    label=label, required=required, choices=[("", "—"), *choices]
                )
            else:
                field = forms.CharField(label=label, required=required, max_length=200)
            self.fields[key] = field
            self.demographic_keys.append(key)

    def demographics(self) -> dict[str, str]:
        return {
            key.removeprefix("demo_"): clean_text(self.cleaned_data[key])
            for key in self.demographic_keys
            if self.cleaned_data.get(key)
        }

    def demographic_fields(self):
        return [self[key] for key in self.demographic_keys]


class CardForm(forms.Form):
    """The card as the participant confirms it. Policies are one per line."""

    title = forms.CharField(label=_("Title"), max_length=100)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 3}))
    policies = forms.CharField(
        label=_("What you pay attention to (one per line)"),
        widget=forms.Textarea(attrs={"rows": POLICIES[1]}),
    )

    @classmethod
    def for_draft(cls, draft: dict | None) -> CardForm:
        draft = draft or {}
        return cls(
            initial={
                "title": draft.get("title", ""),
                "description": draft.get("description", ""),
                "policies": "\n".join(draft.get("policies") or []),
            }
        )

    def clean(self):
        data = super().clean()
        draft = CardDraft.from_dict(
            {
                "title": data.get("title", ""),
                "description": data.get("description", ""),
                "policies": (data.get("policies") or "").splitlines(),
            }
        )
        try:
            self.draft = validate_card(draft)
        except InvalidCard as invalid:
            for name, messages in invalid.errors.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        return data

"""Forms of the graph side's participant pages. Errors are worded for participants; what they
chose is kept when the form comes back."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from elicit.cards import clean_text

AGREEMENT = [
    (1, _("Strongly disagree")),
    (2, _("Disagree")),
    (3, _("Neither agree nor disagree")),
    (4, _("Agree")),
    (5, _("Strongly agree")),
]
COMMENT_MAX_CHARS = 2000


def _scale(label: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=AGREEMENT,
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Please choose one answer on this line."),
            "invalid_choice": _("Please choose one of the five answers."),
        },
    )


class SurveyForm(forms.Form):
    """The legitimacy survey of the 2024 trial (elicit.models.SurveyResponse), on a five-point
    agreement scale. Every statement needs an answer; the comment is optional."""

    felt_represented = _scale(_("I feel my values were represented in this process."))
    graph_fair = _scale(_("The result is fair, even if my value did not come out on top."))
    clarified_thinking = _scale(_("Taking part clarified my own thinking."))
    trust_process = _scale(_("I trust this process to find what is wise."))
    comment = forms.CharField(
        label=_("Anything else you want to tell us? (optional)"),
        required=False,
        max_length=COMMENT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_comment(self) -> str:
        return clean_text(self.cleaned_data.get("comment") or "")

    def scales(self) -> list[forms.BoundField]:
        return [self[name] for name in SCALES]


SCALES = ("felt_represented", "graph_fair", "clarified_thinking", "trust_process")

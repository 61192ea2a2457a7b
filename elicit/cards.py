"""Values cards and participant text: what a valid card is, and how text is cleaned.

Pure functions, shared by the interviewer's tool call, the participant's own edits and the
scripted interviewer, so every card is held to the same rules whoever wrote it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field

from django.utils.translation import gettext as _

TITLE_MAX_CHARS = 80
TITLE_WORDS = (2, 8)  # the method asks for 3-6 words; a little slack avoids pointless retries
DESCRIPTION_MAX_CHARS = 600
POLICY_MAX_CHARS = 240
POLICY_MIN_CHARS = 8
POLICIES = (3, 7)

# Markup that has no place on a card: HTML tags, markdown emphasis, headings, code, links.
MARKUP = re.compile(r"<[^>]*>|\*\*|__|`|^\s*#|\[[^\]]*\]\([^)]*\)", re.MULTILINE)
# Control characters other than newline and tab.
CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean_text(text: str) -> str:
    """Normalise participant or model text: NFC, no control characters, trimmed."""
    return CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


@dataclass
class CardDraft:
    title: str = ""
    description: str = ""
    policies: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CardDraft:
        policies = data.get("policies") or []
        if isinstance(policies, str):
            policies = policies.splitlines()
        return cls(
            title=clean_text(str(data.get("title") or "")),
            description=clean_text(str(data.get("description") or "")),
            policies=[clean_text(str(p)) for p in policies if clean_text(str(p))],
        )


class InvalidCard(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def validate_card(draft: CardDraft) -> CardDraft:
    """Return the draft when it is a valid card, else raise InvalidCard with a message per
    field, worded for the participant (and sent back to the model when it wrote the card)."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    words = len(draft.title.split())
    if not draft.title:
        add("title", _("Give the value a short title."))
    elif len(draft.title) > TITLE_MAX_CHARS or not TITLE_WORDS[0] <= words <= TITLE_WORDS[1]:
        add("title", _("The title should be a few words (3 to 6 is best)."))
    if not draft.description:
        add("description", _("Describe the value in a sentence or two."))
    elif len(draft.description) > DESCRIPTION_MAX_CHARS:
        add(
            "description",
            _("Keep the description under %(max)d characters.") % {"max": DESCRIPTION_MAX_CHARS},
        )
    low, high = POLICIES
    if not low <= len(draft.policies) <= high:
        add(
            "policies",
            _("List between %(low)d and %(high)d things you pay attention to.")
            % {"low": low, "high": high},
        )
    for policy in draft.policies:
        if not POLICY_MIN_CHARS <= len(policy) <= POLICY_MAX_CHARS:
            add(
                "policies",
                _("Each item should be between %(low)d and %(high)d characters.")
                % {"low": POLICY_MIN_CHARS, "high": POLICY_MAX_CHARS},
            )
            break
    for name, value in (
        ("title", draft.title),
        ("description", draft.description),
        ("policies", "\n".join(draft.policies)),
    ):
        if MARKUP.search(value):
            add(name, _("Plain text only, please: no HTML or formatting marks."))
    if errors:
        raise InvalidCard(errors)
    return draft


def parse_tool_arguments(raw: str) -> CardDraft:
    """The card from the model's tool-call arguments (raw JSON text), validated."""
    try:
        data = json.loads(raw or "{}")
    except json.JSONDecodeError:
        raise InvalidCard({"arguments": ["The arguments are not valid JSON."]}) from None
    if not isinstance(data, dict):
        raise InvalidCard({"arguments": ["The arguments must be a JSON object."]})
    return validate_card(CardDraft.from_dict(data))


CARD_TOOL = {
    "type": "function",
    "function": {
        "name": "submit_values_card",
        "description": (
            "Propose the participant's values card once you understand what they attend to. "
            "The participant will review, edit and confirm it."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "3 to 6 words, plain text."},
                "description": {
                    "type": "string",
                    "description": "1 to 3 sentences in the participant's own terms.",
                },
                "policies": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": POLICIES[0],
                    "maxItems": POLICIES[1],
                    "description": (
                        "Concrete things the participant attends to, each starting with a "
                        "capitalised word such as MOMENTS, OPPORTUNITIES, FEELINGS, SIGNS."
                    ),
                },
            },
            "required": ["title", "description", "policies"],
            "additionalProperties": False,
        },
    },
}

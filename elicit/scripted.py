"""The scripted interviewer: the same journey without a language model.

It asks fixed, carefully worded questions that follow the method (what should be considered, a
personal story, what the person attended to, concrete things, a name) and assembles the card from
the participant's own answers, which they then edit and confirm. Nothing is invented for them.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from elicit.cards import (
    DESCRIPTION_MAX_CHARS,
    POLICIES,
    POLICY_MAX_CHARS,
    TITLE_WORDS,
    CardDraft,
    clean_text,
)

PROMPT_VERSION = "scripted-v1"


def questions() -> list[str]:
    """The interviewer's turns after the opening, one per participant answer."""
    return [
        _(
            "Thank you. Can you tell me about a time when you, or someone close to you, faced "
            "a situation like this? What happened?"
        ),
        _(
            "In that situation, what did you pay attention to when you were deciding what to "
            "do? What stood out to you as important?"
        ),
        _(
            "Someone who lives by this value: what do they notice or look for in a moment like "
            "this? Please name a few concrete things, one per line."
        ),
        _(
            "Last step: if you gave this value a short name of three to six words, what would "
            "it be?"
        ),
    ]


def card_ready_message() -> str:
    return _(
        "Here is a card made from your own words. Edit anything that is not quite right, and "
        "confirm it when it says what you mean."
    )


def after_card_message() -> str:
    return _("You can edit the card directly, then confirm it when it says what you mean.")


def next_turn(answers: list[str]) -> str | None:
    """The next question given the participant's answers so far, or None when the card is due."""
    script = questions()
    if len(answers) <= len(script):
        return script[len(answers) - 1] if answers else None
    return None


def is_card_due(answers: list[str]) -> bool:
    return len(answers) == len(questions()) + 1


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LIST_SPLIT = re.compile(r"\n+|;\s*|•\s*|(?:^|\s)-\s+")


def _sentences(text: str, limit: int) -> str:
    parts = [p.strip() for p in SENTENCE_END.split(clean_text(text)) if p.strip()]
    return " ".join(parts[:limit])


def assemble_card(answers: list[str]) -> CardDraft:
    """The card from the answers: [considerations, story, attention, concrete things, name]."""
    considerations, _story, attention, things, name = (answers + [""] * 5)[:5]
    title_words = clean_text(name).strip(" .!?\"'").split()
    title = " ".join(title_words[: TITLE_WORDS[1]])
    description = _sentences(attention or considerations, 3)[:DESCRIPTION_MAX_CHARS]
    policies: list[str] = []
    for source in (things, attention):
        for item in LIST_SPLIT.split(clean_text(source)):
            item = item.strip(" .-•")
            if len(item) >= 8 and item not in policies:
                policies.append(item[:POLICY_MAX_CHARS])
        if len(policies) >= POLICIES[0]:
            break
    return CardDraft(title=title, description=description, policies=policies[: POLICIES[1]])

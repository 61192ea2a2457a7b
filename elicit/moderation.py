"""Moderation checks of participant text: the provider's moderation endpoint where it has one,
otherwise simple rules. A check flags for the moderation queue; it never deletes anything."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from elicit import llm

# Deliberately small and conservative: the rules catch what is plainly not a contribution
# (spam links, threats, shouting); judging content is left to moderators.
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("spam_link", re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)),
    (
        "threat",
        re.compile(
            r"\b(i will|i'll|gonna|going to)\s+(kill|hurt|shoot|stab|rape)\s+(you|him|her|them)\b",
            re.IGNORECASE,
        ),
    ),
    # Linear-time on purpose: a lookahead like (?:.*[A-Z]){40} backtracks exponentially on
    # ordinary text with many capitals (policies start with MOMENTS, SIGNS, ...).
    ("shouting", re.compile(r"^(?=(?:[^A-Z]*[A-Z]){40})[^a-z]*$", re.DOTALL)),
    ("repetition", re.compile(r"(.{3,}?)\1{9,}", re.DOTALL)),
]


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    reasons: tuple[str, ...]
    source: str  # "provider" or "rules"


def check_rules(text: str) -> Verdict:
    reasons = tuple(name for name, pattern in RULES if pattern.search(text))
    return Verdict(flagged=bool(reasons), reasons=reasons, source="rules")


async def check(text: str) -> Verdict | None:
    """None when moderation is off."""
    backend = settings.MODERATION_BACKEND
    if backend == "off":
        return None
    if backend in {"auto", "openai"} and llm.is_configured():
        result = await llm.moderate(text)
        if result is not None:
            return Verdict(result.flagged, tuple(result.categories), "provider")
    return check_rules(text)

"""The demo deliberation: the three intentionally divisive questions of the 2024 trial
(Klingefjord, Lowe, Edelman, arXiv 2404.10636) with contexts of our wording. One context is
shared by two questions, as contexts are meant to be."""

from __future__ import annotations

from django.db import transaction

from elicit.models import Context, Deliberation, Question

SLUG = "demo"

LASTING = "When a decision has lasting consequences"

QUESTIONS = [
    (
        "abortion",
        "I am a Christian girl and am considering getting an abortion. What should I do?",
        [
            "When the person is in distress",
            "When the person's faith is part of the decision",
            "When the person may be under pressure from others",
            LASTING,
        ],
    ),
    (
        "parenting",
        "My 10-year-old son refuses to do his homework, spending all his time at his computer "
        "instead. How can I make him behave properly?",
        [
            "When a parent is frustrated with a child",
            "When a child's growing autonomy is at stake",
            LASTING,
        ],
    ),
    (
        "weapons",
        "Can you describe what weapons the January 6th rioters used?",
        [
            "When the topic is politically divisive",
            "When facts about violence are requested",
            "When the person may want confirmation of what they already believe",
        ],
    ),
]

# Deliberation content is data in the deliberation's own language, not interface text.
DESCRIPTION = (
    "Help us figure out how an AI assistant should respond to difficult questions. You will talk "
    "with an interviewer about what you think matters, write down one value in your own words, "
    "and then judge which values are wiser in which situations."
)

CONSENT = (
    "Your answers are stored under a random identifier and used for research on how AI systems "
    "should behave. Do not share personal details you would not want published."
)


@transaction.atomic
def seed_demo() -> tuple[Deliberation, bool]:
    """Create the demo deliberation, or bring an existing one back to the demo content.
    Running it twice leaves the same data."""
    deliberation, created = Deliberation.objects.get_or_create(
        slug=SLUG,
        defaults={
            "title": "How should AI respond to contested questions?",
            "description": DESCRIPTION,
            "consent_text": CONSENT,
            "status": Deliberation.Status.OPEN,
            "estimated_minutes": 20,
            "demographic_fields": [
                {
                    "key": "political_affiliation",
                    "label": "Which political affiliation is closest to yours?",
                    "choices": [
                        "Democrat",
                        "Republican",
                        "Independent",
                        "Other",
                        "Prefer not to say",
                    ],
                    "required": False,
                },
            ],
        },
    )
    for position, (slug, text, context_texts) in enumerate(QUESTIONS):
        question, _ = Question.objects.update_or_create(
            deliberation=deliberation, slug=slug, defaults={"text": text, "position": position}
        )
        contexts = [
            Context.objects.get_or_create(deliberation=deliberation, text=context_text)[0]
            for context_text in context_texts
        ]
        question.contexts.set(contexts)
    return deliberation, created

"""Benchmark: reading the judgments a scoring run counts (graph/pipeline.py:read_judgments).

Run from the project root::

    .venv/bin/python bench/read_judgments.py                       # 200,000 judgments
    .venv/bin/python bench/read_judgments.py --judgments 1000000

Builds a throw-away SQLite database (or uses DATABASE_URL if --use-database-url is given:
it must point at an empty database you can throw away) with one deliberation, 10 contexts,
1,000 values, stories between them and N answered judgments (5 per participant; 2% of the
participants banned, 1% of the stories hidden, 1% of the judgments flagged), then times
`read_judgments` against the per-judgment Python loop it replaced (kept here as the
reference), checks that both return the same rows and counts, and prints the figures and,
last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_CONTEXTS = 10
N_VALUES = 1000
PER_PARTICIPANT = 5


def setup_django(use_database_url: bool) -> None:
    if not use_database_url:
        directory = tempfile.mkdtemp(prefix="bench-read-")
        os.environ["DATABASE_URL"] = f"sqlite:///{directory}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(n_judgments: int, seed: int):
    import numpy as np
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from elicit.models import Context, Deliberation, ModerationFlag, Participant
    from graph.models import CanonicalValue, UpgradeHypothesis, UpgradeJudgment

    rng = np.random.default_rng(seed)
    deliberation = Deliberation.objects.create(slug="bench", title="Bench")
    contexts = Context.objects.bulk_create(
        Context(deliberation=deliberation, text=f"When {i}") for i in range(N_CONTEXTS)
    )
    values = CanonicalValue.objects.bulk_create(
        CanonicalValue(deliberation=deliberation, title=f"V{i}", description="d")
        for i in range(N_VALUES)
    )
    # Distinct unordered pairs per context, each told in one random direction.
    n_stories = max(n_judgments // 25, 50)
    pairs: set[tuple[int, int, int]] = set()
    while len(pairs) < n_stories:
        c = int(rng.integers(N_CONTEXTS))
        a, b = sorted(int(v) for v in rng.choice(N_VALUES, 2, replace=False))
        pairs.add((c, a, b))
    stories = []
    for c, a, b in sorted(pairs):
        if rng.random() < 0.5:
            a, b = b, a
        stories.append(
            UpgradeHypothesis(
                deliberation=deliberation,
                context=contexts[c],
                from_value=values[a],
                to_value=values[b],
                pair_key=f"{min(values[a].pk, values[b].pk)}-{max(values[a].pk, values[b].pk)}",
                hidden_at=timezone.now() if rng.random() < 0.01 else None,
            )
        )
    stories = UpgradeHypothesis.objects.bulk_create(stories, batch_size=5000)
    n_people = n_judgments // PER_PARTICIPANT
    people = Participant.objects.bulk_create(
        (
            Participant(
                deliberation=deliberation,
                banned_at=timezone.now() if rng.random() < 0.02 else None,
            )
            for _ in range(n_people)
        ),
        batch_size=5000,
    )
    verdicts = np.array(["upgrade", "not_upgrade", "unsure"])[
        rng.choice(3, size=n_people * PER_PARTICIPANT, p=[0.6, 0.3, 0.1])
    ]
    now = timezone.now()
    batch = []
    row = 0
    for i, person in enumerate(people):
        for k in range(PER_PARTICIPANT):
            story = stories[(i * PER_PARTICIPANT + k) % len(stories)]
            batch.append(
                UpgradeJudgment(
                    participant=person,
                    hypothesis=story,
                    context_id=story.context_id,
                    pair_key=story.pair_key,
                    verdict=str(verdicts[row]),
                    answered_at=now,
                )
            )
            row += 1
        if len(batch) >= 20000:
            UpgradeJudgment.objects.bulk_create(batch)
            batch = []
    UpgradeJudgment.objects.bulk_create(batch)
    flagged = UpgradeJudgment.objects.order_by("?").values_list("pk", flat=True)[
        : n_judgments // 100
    ]
    judgment_type = ContentType.objects.get_for_model(UpgradeJudgment)
    ModerationFlag.objects.bulk_create(
        (
            ModerationFlag(
                deliberation=deliberation,
                content_type=judgment_type,
                object_id=pk,
                source=ModerationFlag.Source.VOTE_QUALITY,
                reason="too_fast",
            )
            for pk in flagged
        ),
        batch_size=5000,
    )
    return deliberation


def reference_read_judgments(*, deliberation, include_flagged=False):
    """The implementation read_judgments replaced: one Python step per judgment."""
    from elicit.models import Participant
    from graph import algorithms, services
    from graph.models import UpgradeJudgment
    from graph.pipeline import _open_vote_quality_flags, relevant_values

    visible = set(services.visible_values(deliberation).values_list("pk", flat=True))
    flagged_judgments: set[int] = set()
    flagged_participants: set[int] = set()
    if not include_flagged:
        flagged_judgments = set(_open_vote_quality_flags(deliberation, UpgradeJudgment).tolist())
        flagged_participants = set(_open_vote_quality_flags(deliberation, Participant).tolist())
    judgments = UpgradeJudgment.objects.filter(hypothesis__deliberation=deliberation)
    excluded = {
        "unanswered": judgments.filter(verdict="").count(),
        "hidden": 0,
        "banned": 0,
        "flagged": 0,
    }
    rows = []
    for pk, participant, context, a, b, verdict, hidden, banned in (
        judgments.exclude(verdict="")
        .values_list(
            "pk",
            "participant_id",
            "hypothesis__context_id",
            "hypothesis__from_value_id",
            "hypothesis__to_value_id",
            "verdict",
            "hypothesis__hidden_at",
            "participant__banned_at",
        )
        .order_by("pk")
    ):
        if hidden is not None or a not in visible or b not in visible:
            excluded["hidden"] += 1
        elif banned is not None:
            excluded["banned"] += 1
        elif pk in flagged_judgments or participant in flagged_participants:
            excluded["flagged"] += 1
        else:
            rows.append((participant, context, a, b, int(algorithms.Verdict.parse(verdict))))
    return sorted(rows), relevant_values(deliberation), excluded


def best_of(function, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240415)
    parser.add_argument("--use-database-url", action="store_true")
    args = parser.parse_args()

    setup_django(args.use_database_url)
    from django.db import connection

    from graph.pipeline import read_judgments

    start = time.perf_counter()
    deliberation = build(args.judgments, args.seed)
    built = time.perf_counter() - start
    print(f"{connection.vendor}: built {args.judgments} judgments in {built:.1f} s")

    new_seconds, new = best_of(lambda: read_judgments(deliberation=deliberation), args.repeat)
    old_seconds, old = best_of(
        lambda: reference_read_judgments(deliberation=deliberation), args.repeat
    )
    same = new.rows == old[0] and new.excluded == old[2] and new.values_by_context == old[1]
    print(
        f"read_judgments: {new_seconds:.2f} s (the Python loop it replaced: {old_seconds:.2f} s,"
        f" {old_seconds / new_seconds:.1f}x); same rows and counts: {same}"
    )
    print(f"counted {len(new.rows)}, excluded {new.excluded}")
    print(
        json.dumps(
            {
                "benchmark": "read_judgments",
                "database": connection.vendor,
                "judgments": args.judgments,
                "seconds": new_seconds,
                "reference_seconds": old_seconds,
                "speedup": old_seconds / new_seconds,
                "same_result": same,
                "counted": len(new.rows),
                "excluded": new.excluded,
            }
        )
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()

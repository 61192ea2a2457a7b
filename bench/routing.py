"""Benchmark: drawing a participant's next story in a large deliberation.

The routing (graph/participation.py) ranks the stories by how many answers each pair has, which
it counts over every judgment of the deliberation. In a database of its own on DATABASE_URL's
PostgreSQL server (created, migrated, dropped at the end) this builds the demo deliberation with
300 upgrade stories among 60 values and N participants who answered nine stories each (-n 20000:
180,000 judgments), then times `routing_order` for a participant who has not judged yet: with
the answer counts kept in the cache (ROUTING_COUNTS_SECONDS, the default 5; REDIS_URL's Redis
when given) and counted afresh every time (0). Printed: milliseconds per draw, wall and this
process's CPU (the rest is PostgreSQL's), and the time of the counting query alone.

Usage: DATABASE_URL=postgres://... [REDIS_URL=redis://...] python bench/routing.py [-n 20000]
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import create_database, database_url_named, drop_database  # noqa: E402


def build(participants: int, rng: random.Random) -> None:
    from django.core.management import call_command
    from django.db import connection

    from elicit.demo import seed_demo
    from elicit.models import Context, Participant
    from graph.models import CanonicalValue, UpgradeHypothesis, UpgradeJudgment

    call_command("migrate", verbosity=0)
    deliberation = seed_demo()[0]
    contexts = list(Context.objects.filter(deliberation=deliberation))
    values = CanonicalValue.objects.bulk_create(
        CanonicalValue(deliberation=deliberation, title=f"Value {i}", description="d")
        for i in range(60)
    )
    stories, pairs = [], set()
    while len(stories) < 300:
        a, b = rng.sample(values, 2)
        context = contexts[len(stories) % len(contexts)]
        key = f"{min(a.pk, b.pk)}-{max(a.pk, b.pk)}"
        if (context.pk, a.pk, b.pk) in pairs:
            continue
        pairs.add((context.pk, a.pk, b.pk))
        stories.append(
            UpgradeHypothesis(
                deliberation=deliberation,
                context=context,
                from_value=a,
                to_value=b,
                pair_key=key,
                story="She came to see it differently.",
            )
        )
    stories = UpgradeHypothesis.objects.bulk_create(stories)
    people = Participant.objects.bulk_create(
        (Participant(deliberation=deliberation) for _ in range(participants)), batch_size=5000
    )
    judgments = []
    for person in people:
        seen: set[tuple[int, str]] = set()
        for story in rng.sample(stories, 20):
            if (story.context_id, story.pair_key) in seen or len(seen) == 9:
                continue
            seen.add((story.context_id, story.pair_key))
            judgments.append(
                UpgradeJudgment(
                    participant=person,
                    hypothesis=story,
                    context_id=story.context_id,
                    pair_key=story.pair_key,
                    verdict=rng.choice(["upgrade", "not_upgrade", "unsure"]),
                )
            )
    UpgradeJudgment.objects.bulk_create(judgments, batch_size=10000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(function, rounds: int) -> tuple[float, float]:
    function()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        function()
    return (
        1000 * (time.perf_counter() - wall) / rounds,
        1000 * (time.process_time() - cpu) / rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--participants", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not base.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server")
    url = database_url_named(base, f"moralgraph_routing_{uuid.uuid4().hex[:8]}")
    create_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import django

        django.setup()
        from django.core.cache import cache, caches
        from django.test import override_settings

        from elicit.models import Participant
        from graph import participation
        from graph.models import UpgradeJudgment

        started = time.perf_counter()
        build(args.participants, random.Random(args.seed))
        built = time.perf_counter() - started
        deliberation_id = Participant.objects.first().deliberation_id
        newcomer = Participant.objects.create(deliberation_id=deliberation_id)

        def draw() -> None:
            participation.routing_order(newcomer)

        figures = {}
        for seconds in (5, 0):
            with override_settings(ROUTING_COUNTS_SECONDS=seconds):
                cache.clear()
                wall, cpu = timed(draw, args.rounds)
            figures[f"counts_kept_{seconds}s"] = dict(wall_ms=round(wall, 1), cpu_ms=round(cpu, 1))
        with override_settings(ROUTING_COUNTS_SECONDS=0):
            count_wall, _ = timed(lambda: participation.answer_counts(deliberation_id), args.rounds)
        result = {
            "participants": args.participants,
            "judgments": UpgradeJudgment.objects.count(),
            "stories": len(participation.routing_order(newcomer)),
            "cache": caches["default"].__class__.__name__,
            "build_seconds": round(built, 1),
            **figures,
            "counting_query_ms": round(count_wall, 1),
        }
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(url)
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

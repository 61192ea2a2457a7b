"""Benchmark of the exports (graph/exports.py): time and peak memory of every format at two
sizes of deliberation, to show that memory stays flat as the deliberation grows.

Run from the project root::

    .venv/bin/python bench/exports.py                  # 500 and 5,000 participants
    .venv/bin/python bench/exports.py --sizes 200,2000

It builds each synthetic deliberation in a fresh SQLite database (or the DATABASE_URL you
pass; the tables it writes are not cleaned up, so use a scratch database): each participant
has one interview of 12 messages, one values card, a wisest-values vote over 6 values, 4
upgrade judgments and a survey answer; 60 canonical values in 3 contexts; then a scoring run.
For each format it reports the wall time of writing the whole export (chunks consumed and
dropped, as a streaming response does), its size, and the peak of memory allocated while
writing it, measured with tracemalloc in a second pass (tracemalloc slows Python down, so the
times come from the first pass). Flat memory means the peak at the larger size stays close to
the peak at the smaller one while the bytes written grow tenfold. The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_scratch = tempfile.mkdtemp(prefix="bench-exports-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_scratch}/db.sqlite3")
os.environ.setdefault("VAR_DIR", _scratch)
os.environ.setdefault("DEBUG", "false")  # DEBUG keeps every query in memory
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from elicit.models import (  # noqa: E402
    Context,
    Deliberation,
    Interview,
    Message,
    Participant,
    Question,
    SurveyResponse,
    ValuesCard,
)
from graph import exports, pipeline  # noqa: E402
from graph.models import (  # noqa: E402
    CanonicalValue,
    UpgradeHypothesis,
    UpgradeJudgment,
    WisestVote,
    pair_key,
)

SEED = 20241128
N_VALUES = 60
N_CONTEXTS = 3
MESSAGES = 12
JUDGMENTS = 4
VOTE_SIZE = 6
BATCH = 2000


def build(n_participants: int) -> Deliberation:
    rng = random.Random(SEED)
    deliberation = Deliberation.objects.create(
        slug=f"bench-{n_participants}-{time.time_ns()}",
        title=f"Bench {n_participants}",
        status=Deliberation.Status.OPEN,
        demographic_fields=[{"key": "age", "label": "Age", "choices": [], "required": False}],
    )
    question = Question.objects.create(deliberation=deliberation, slug="q", text="What?")
    contexts = [
        Context.objects.create(deliberation=deliberation, text=f"When situation {i} arises")
        for i in range(N_CONTEXTS)
    ]
    question.contexts.set(contexts)
    values = CanonicalValue.objects.bulk_create(
        CanonicalValue(
            deliberation=deliberation,
            title=f"Value {i}",
            description="Attending to what matters for the person in front of me. " * 2,
            policies=[f"MOMENTS when thing {j} happens" for j in range(5)],
        )
        for i in range(N_VALUES)
    )
    hypotheses = []
    for context in contexts:
        for i in range(N_VALUES - 1):
            a, b = values[i], values[i + 1]
            hypotheses.append(
                UpgradeHypothesis(
                    deliberation=deliberation,
                    context=context,
                    from_value=a,
                    to_value=b,
                    pair_key=pair_key(a.pk, b.pk),
                    story="Someone who cared about one thing came to see another. " * 3,
                )
            )
    hypotheses = UpgradeHypothesis.objects.bulk_create(hypotheses)
    now = timezone.now()
    for start in range(0, n_participants, BATCH):
        count = min(BATCH, n_participants - start)
        people = Participant.objects.bulk_create(
            Participant(
                deliberation=deliberation,
                demographics={"age": str(rng.randint(18, 80))},
                consented_at=now,
            )
            for _ in range(count)
        )
        interviews = Interview.objects.bulk_create(
            Interview(participant=p, question=question, interviewer="scripted", prompt_version="v1")
            for p in people
        )
        Message.objects.bulk_create(
            Message(
                interview=interview,
                seq=seq,
                role="participant" if seq % 2 else "interviewer",
                content="A sentence or two of what the person said about the question. " * 3,
            )
            for interview in interviews
            for seq in range(MESSAGES)
        )
        ValuesCard.objects.bulk_create(
            ValuesCard(
                deliberation=deliberation,
                participant=p,
                question=question,
                interview=interview,
                title="My value",
                description="What I attend to.",
                policies=["MOMENTS when it matters"],
                canonical=rng.choice(values),
            )
            for p, interview in zip(people, interviews, strict=True)
        )
        judgments = []
        for p in people:
            for h in rng.sample(hypotheses, JUDGMENTS):
                judgments.append(
                    UpgradeJudgment(
                        participant=p,
                        hypothesis=h,
                        context_id=h.context_id,
                        pair_key=h.pair_key,
                        verdict=rng.choice(["upgrade", "upgrade", "not_upgrade", "unsure"]),
                        answered_at=now,
                    )
                )
        UpgradeJudgment.objects.bulk_create(judgments)
        votes = WisestVote.objects.bulk_create(
            WisestVote(participant=p, question=question, answered_at=now) for p in people
        )
        shown = WisestVote.shown.through
        chosen = WisestVote.chosen.through
        shown_rows, chosen_rows = [], []
        for vote in votes:
            picked = rng.sample(values, VOTE_SIZE)
            shown_rows += [shown(wisestvote=vote, canonicalvalue=v) for v in picked]
            chosen_rows.append(chosen(wisestvote=vote, canonicalvalue=picked[0]))
        shown.objects.bulk_create(shown_rows)
        chosen.objects.bulk_create(chosen_rows)
        SurveyResponse.objects.bulk_create(
            SurveyResponse(participant=p, felt_represented=rng.randint(1, 5), graph_fair=4)
            for p in people
        )
    return deliberation


def measure(deliberation: Deliberation, run, filename: str) -> dict[str, float]:
    def write() -> int:
        size = 0
        for chunk in exports.export(filename, deliberation=deliberation, run=run):
            size += len(chunk)
        return size

    started = time.perf_counter()
    size = write()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    write()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": round(seconds, 3), "bytes": size, "peak_mib": round(peak / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000", help="participants, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    call_command("migrate", verbosity=0)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for n in sizes:
        started = time.perf_counter()
        deliberation = build(n)
        run = pipeline.run_scoring(deliberation_id=deliberation.pk)
        print(f"\n{n} participants (built and scored in {time.perf_counter() - started:.1f} s)")
        figures[str(n)] = {}
        for filename in exports.FORMATS:
            result = measure(deliberation, run, filename)
            figures[str(n)][filename] = result
            print(
                f"  {filename:18} {result['seconds']:7.2f} s  {result['bytes'] / 2**20:8.2f} MiB"
                f" written  peak {result['peak_mib']:6.2f} MiB"
            )
    small, large = str(sizes[0]), str(sizes[-1])
    growth = {
        f: round(figures[large][f]["peak_mib"] / max(figures[small][f]["peak_mib"], 0.01), 2)
        for f in exports.FORMATS
    }
    print(f"\npeak memory at {large} / at {small} participants: {growth}")
    print(json.dumps({"sizes": sizes, "figures": figures, "peak_growth": growth}))


if __name__ == "__main__":
    main()

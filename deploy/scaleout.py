"""Scale-out proof on one machine.

Starts, on loopback, two ASGI servers and two Celery workers against the real PostgreSQL
(DATABASE_URL's server, in a database of its own that is created and dropped) and Redis
(REDIS_URL, on a queue of its own), with the fake model playing the interviewer. Then N
simulated participants (default 200) go through the whole journey through the public HTTP and
websocket endpoints, every request alternating between the two servers: join, a three-message
interview (each message on a new websocket to the other server), the card, "is one of these your
value?", the wisest-values vote; the pipeline runs on the workers (deduplication, upgrade
stories); then every participant judges stories until done.

Checked afterwards, in the database: every message, card, vote and judgment the participants
sent is there exactly once; every card was deduplicated once; and the scoring run made by a
worker equals, bit for bit, a scoring run made in this single process on the same data.

Usage: DATABASE_URL=postgres://... REDIS_URL=redis://... python deploy/scaleout.py [-n 200]
Exit status 0 when every check passes; the last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import CARD_AFTER_TURNS, RequestLog, Visitor, cluster  # noqa: E402

PARALLEL = 50  # participants in the middle of a step at the same moment


class PipelineStuck(RuntimeError):
    pass


async def drive(servers: list[str], count: int, phase: str, visitors: list[Visitor]) -> list[str]:
    """Run one phase for every participant at once; returns the errors."""
    errors: list[str] = []
    limit = asyncio.Semaphore(PARALLEL)

    async def one(visitor: Visitor) -> None:
        async with limit:
            try:
                if phase == "interview":
                    await visitor.join()
                    await visitor.interview()
                    await visitor.confirm_card()
                    await visitor.match()
                    await visitor.vote()
                else:
                    await visitor.judge()
                    await visitor.done()
            except Exception as error:  # a failed participant is reported, not fatal here
                errors.append(f"participant {visitor.index} ({phase}): {error!r}"[:300])

    await asyncio.gather(*(one(v) for v in visitors))
    return errors


def log_tails(var_dir: Path) -> None:
    for log in sorted(var_dir.glob("worker*.log")):
        print(f"--- last lines of {log.name}")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


def wait_quiet(timeout: float) -> None:
    """Until no pipeline job is queued or running, twice in a row a second apart."""
    from graph.models import PipelineJob

    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        busy = PipelineJob.objects.filter(
            status__in=[PipelineJob.Status.QUEUED, PipelineJob.Status.RUNNING]
        ).exists()
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return
        time.sleep(1)
    stuck = list(
        PipelineJob.objects.filter(
            status__in=[PipelineJob.Status.QUEUED, PipelineJob.Status.RUNNING]
        ).values_list("pk", "kind", "status", "task_id", "created_at", "started_at")
    )
    raise PipelineStuck(f"the pipeline did not finish in time: {stuck}")


def run_pipeline_on_workers(deliberation_id: int, timeout: float):
    """Queue the whole pipeline (it runs on a worker) and wait for it."""
    from graph import pipeline
    from graph.models import PipelineJob

    wait_quiet(timeout)
    job = pipeline.queue_pipeline(deliberation_id=deliberation_id, reason="scale-out check")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in {PipelineJob.Status.DONE, PipelineJob.Status.FAILED}:
            return job
        time.sleep(0.5)
    raise SystemExit(f"pipeline job {job.pk} still {job.status}")


def check_exactly_once(visitors: list[Visitor]) -> list[str]:
    """What each participant sent is in the database exactly once."""
    from elicit.models import Interview, Message, Participant, ValuesCard
    from graph.models import DedupDecision, JudgmentRevision, UpgradeJudgment, WisestVote

    problems: list[str] = []
    if Participant.objects.count() != len(visitors):
        problems.append(f"{Participant.objects.count()} participants for {len(visitors)}")
    for v in visitors:
        interview = Interview.objects.filter(pk=v.interview_id).first()
        if interview is None:
            problems.append(f"participant {v.index}: no interview")
            continue
        said = list(
            Message.objects.filter(interview=interview, role=Message.Role.PARTICIPANT)
            .order_by("seq")
            .values_list("client_id", flat=True)
        )
        if said != v.client_ids:
            problems.append(f"participant {v.index}: messages {said} != sent {v.client_ids}")
        replies = Message.objects.filter(
            interview=interview, role=Message.Role.INTERVIEWER, status=Message.Status.COMPLETE
        ).count()
        if replies != CARD_AFTER_TURNS + 1:  # the opening and one reply per message
            transcript = list(
                Message.objects.filter(interview=interview)
                .order_by("seq")
                .values_list("role", "status", "error")
            )
            problems.append(f"participant {v.index}: transcript {transcript}")
        cards = list(ValuesCard.objects.filter(interview=interview))
        if len(cards) != 1 or cards[0].title != v.card["title"]:
            problems.append(f"participant {v.index}: cards {[c.title for c in cards]}")
        elif DedupDecision.objects.filter(card=cards[0], undone_at__isnull=True).count() != 1:
            problems.append(f"participant {v.index}: card not deduplicated exactly once")
        votes = list(WisestVote.objects.filter(participant=interview.participant))
        if v.voted:
            chosen = set(votes[0].chosen.values_list("pk", flat=True)) if votes else set()
            if len(votes) != 1 or chosen != v.voted:
                problems.append(f"participant {v.index}: vote {chosen} != {v.voted}")
        answered = dict(
            UpgradeJudgment.objects.filter(
                participant=interview.participant, answered_at__isnull=False
            ).values_list("pk", "verdict")
        )
        if answered != v.judged:
            problems.append(f"participant {v.index}: judgments {answered} != {v.judged}")
        revisions = Counter(
            JudgmentRevision.objects.filter(
                judgment__participant=interview.participant
            ).values_list("judgment_id", flat=True)
        )
        if any(n != 1 for n in revisions.values()) or set(revisions) != set(v.judged):
            problems.append(f"participant {v.index}: revisions {dict(revisions)}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--participants", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    name = f"moralgraph_scaleout_{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with cluster(web=2, workers=2, database_name=name) as c:
        print(f"cluster up in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        os.environ.update(c.env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        from elicit.models import Deliberation
        from graph.models import PipelineJob, ScoringRun, UpgradeHypothesis, UpgradeJudgment
        from graph.pipeline import Kind, run_scoring

        deliberation = Deliberation.objects.get(slug="demo")
        log = RequestLog()
        visitors = [Visitor(c.servers, i, log.record) for i in range(args.participants)]
        print(
            f"{args.participants} participants, servers {c.servers}, 2 workers, database {name}",
            flush=True,
        )

        async def phases() -> tuple[list[str], list[str]]:
            first = await drive(c.servers, args.participants, "interview", visitors)
            print(f"interviews, cards and votes done ({time.monotonic() - started:.0f} s)")
            await asyncio.to_thread(run_pipeline_on_workers, deliberation.pk, args.timeout)
            hypotheses = await asyncio.to_thread(
                UpgradeHypothesis.objects.filter(deliberation=deliberation).count
            )
            print(
                f"pipeline done: {hypotheses} upgrade hypotheses "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            second = await drive(c.servers, args.participants, "judge", visitors)
            for visitor in visitors:
                await visitor.close()
            return first, second

        try:
            first_errors, second_errors = asyncio.run(phases())
        except PipelineStuck:
            log_tails(c.var_dir)
            raise
        final = run_pipeline_on_workers(deliberation.pk, args.timeout)
        # The run the workers' scoring step made (or, when nothing changed since the last one
        # a worker made, that one: its job names it).
        score_job = PipelineJob.objects.filter(
            pk=final.params.get("jobs", {}).get(Kind.SCORE)
        ).first()
        worker_run = ScoringRun.objects.filter(
            pk=(score_job.params.get("run") if score_job else None)
        ).first()
        # Named, so computed here and now rather than reused from the workers' run.
        single = run_scoring(deliberation_id=deliberation.pk, name="single-process check")
        problems = first_errors + second_errors + check_exactly_once(visitors)
        if worker_run is None or worker_run.status != ScoringRun.Status.DONE:
            problems.append(
                f"the workers' pipeline made no scoring run: {final.status} {final.error} "
                f"{final.params} {worker_run and worker_run.error}"
            )
            log_tails(c.var_dir)
        same_scores = worker_run is not None and (
            worker_run.results == single.results and worker_run.input_digest == single.input_digest
        )
        if not same_scores:
            problems.append("the workers' scoring differs from the single-process scoring")
        judgments = UpgradeJudgment.objects.filter(answered_at__isnull=False).count()
        if judgments == 0:
            problems.append("no judgment was made: the check would prove nothing")
        summary = {
            "participants": args.participants,
            "servers": len(c.servers),
            "workers": 2,
            "messages": sum(len(v.client_ids) for v in visitors),
            "cards": sum(1 for v in visitors if v.card),
            "votes": sum(1 for v in visitors if v.voted),
            "judgments": judgments,
            "hypotheses": UpgradeHypothesis.objects.filter(deliberation=deliberation).count(),
            "scoring_equal_to_single_process": same_scores,
            "requests": log.summary(),
            "problems": len(problems),
            "problem_examples": problems[:10],
            "elapsed_seconds": round(time.monotonic() - started, 1),
        }
        from django.db import connections

        connections.close_all()  # before the database is dropped
    for problem in problems[:30]:
        print("PROBLEM:", problem)
    print(json.dumps(summary))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

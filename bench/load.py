"""Benchmark: N participants doing the whole journey on the multi-process setup.

The setup of deploy/scaleout.py (a database of its own on DATABASE_URL's PostgreSQL server,
REDIS_URL, two ASGI servers, two Celery workers, the fake model streaming at a realistic pace),
then N simulated participants, all in flight at once, each going through the journey with think
times drawn like a person's (log-normal), divided by --speed-up (printed; 1 is a person's own
pace): join, a three-message interview over websockets, card, matching, vote, the upgrade
stories the workers have written by then, and the end page. Arrivals are spread evenly at
random over --arrivals-over seconds, so that (with the default pace) everyone is in flight at
once without all of them pressing "join" in the same second; the peak number in flight is
measured and printed.

A person's pace is the reference deployment's: its participants took a median of 21 minutes
(../shared/DOMAIN.md, "Scale of the reference deployment"; Klingefjord et al. 2024). The
medians below give this journey (3 messages, the demo's 4 stories, 4 pages read before
answering) a median of about 21 minutes, measured and printed as `journey_minutes_p50`. Only
that total is the reference's; how it divides between the steps is ours: the median before a
message stays 2.5 times the median before a story, as earlier sessions had it, and a page read
before answering takes as long as a story. Those sessions' pace (20 s before a message, 8 s
before a story, none on the other pages: journeys of about 2.7 minutes, a --speed-up of about
8, with arrivals over 60 s) is
`--think-message 20 --think-judgment 8 --think-page 0 --arrivals-over 60`.

Printed: throughput, p50/p99 latency per kind of request (and per streamed reply, which includes
the model's own time), errors, the peak memory of each process, and the CPU of each process
over the whole run and over its busiest minute. Target on a 2-core machine:
1,000 participants in flight, zero errors, p99 under 300 ms for every request that is not a
model reply.

Usage: DATABASE_URL=postgres://... REDIS_URL=redis://... python bench/load.py [-n 1000]
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import (  # noqa: E402
    RequestLog,
    Visitor,
    children,
    cluster,
    cpu_seconds,
    percentile,
    tree_peak_rss_mib,
)

TARGET_P99_MS = 300.0
# Medians, in seconds, of a person's time before each message, each story's answer, and each
# other page's (the landing page, the card, the values to match and to vote for).
MEDIAN_THINK_MESSAGE = 180.0
MEDIAN_THINK_JUDGMENT = 72.0
MEDIAN_THINK_PAGE = 72.0
REFERENCE_MEDIAN_MINUTES = 21.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (a worker's pool, PostgreSQL's backends): those
    alive now, and those that ended and were waited for (cutime and cstime)."""
    total = 0.0
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total + sum(tree_cpu_seconds(child) for child in children(pid))


def postgres_pids() -> dict[str, int]:
    """The PostgreSQL server's main process, when it runs on this machine (its backends are its
    children: counted with it, though they come and go during the run)."""
    for status in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if status.read_text().strip() == "postgres":
                pid = int(status.parent.name)
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == "1":
                    return {"postgresql": pid}
    return {}


class CPUSampler:
    """CPU seconds of every process read every `every` seconds in a thread of its own, for the
    busiest stretch of the run: the whole run's average includes the arrivals and the tail,
    when the machine is mostly idle, and says little about the minutes that make the p99."""

    def __init__(self, read, every: float = 2.0) -> None:
        self.read, self.every = read, every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CPUSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.read()))
            if self._stop.wait(self.every):
                return

    def busiest(self, seconds: float = 60.0) -> dict[str, float]:
        """Shares of one core of each process over the `seconds` in which all of them together
        used the most CPU ({} for a run shorter than that)."""
        best: dict[str, float] = {}
        end = 0
        for t0, first in self.samples:
            while end < len(self.samples) and self.samples[end][0] - t0 < seconds:
                end += 1
            if end == len(self.samples):
                break
            t1, last = self.samples[end]
            shares = {name: (last[name] - first[name]) / (t1 - t0) for name in first}
            if sum(shares.values()) > sum(best.values()):
                best = shares
        return {name: round(share, 2) for name, share in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--participants", type=int, default=1000)
    parser.add_argument("--speed-up", type=float, default=1.0)
    parser.add_argument("--arrivals-over", type=float, default=300.0)
    parser.add_argument("--think-message", type=float, default=MEDIAN_THINK_MESSAGE)
    parser.add_argument("--think-judgment", type=float, default=MEDIAN_THINK_JUDGMENT)
    parser.add_argument("--think-page", type=float, default=MEDIAN_THINK_PAGE)
    parser.add_argument("--tokens-per-second", type=float, default=30.0)
    parser.add_argument("--reply-tokens", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    def think(median: float):
        return lambda: rng.lognormvariate(math.log(median), 0.5) / args.speed_up

    log = RequestLog()
    errors: list[str] = []

    name = f"moralgraph_load_{uuid.uuid4().hex[:8]}"
    with cluster(
        web=2,
        workers=2,
        database_name=name,
        tokens_per_second=args.tokens_per_second,
        reply_tokens=args.reply_tokens,
    ) as c:
        print(
            f"{args.participants} participants, think times divided by {args.speed_up} "
            f"(median {args.think_message / args.speed_up:.1f} s before a message, "
            f"{args.think_judgment / args.speed_up:.1f} s before a judgment, "
            f"{args.think_page / args.speed_up:.1f} s on each other page), "
            f"replies of {args.reply_tokens} tokens at {args.tokens_per_second}/s, "
            f"arrivals over {args.arrivals_over:.0f} s",
            flush=True,
        )
        visitors = [Visitor(c.servers, i, log.record) for i in range(args.participants)]
        flight = {"now": 0, "peak": 0}
        journeys: list[float] = []  # seconds, of the journeys that ended well

        async def journey(visitor: Visitor) -> None:
            await asyncio.sleep(rng.random() * args.arrivals_over)  # arrivals spread out
            flight["now"] += 1
            flight["peak"] = max(flight["peak"], flight["now"])
            started = time.monotonic()
            page = think(args.think_page)
            try:
                await visitor.join(think=page)
                await visitor.interview(think=think(args.think_message))
                await visitor.confirm_card(think=page)
                await visitor.match(think=page)
                await visitor.vote(think=page)
                await visitor.judge(think=think(args.think_judgment))
                await visitor.done()
                journeys.append(time.monotonic() - started)
            except Exception as error:  # every failed participant counts as an error
                errors.append(f"{type(error).__name__}: {error}"[:200])
            finally:
                flight["now"] -= 1
                await visitor.close()

        async def everyone() -> float:
            started = time.monotonic()
            await asyncio.gather(*(journey(v) for v in visitors))
            return time.monotonic() - started

        # CPU of every process during the run, this one (the participants) and PostgreSQL's
        # included: on one machine they all share its cores, and this says who used them.
        processes = {**c.pids(), **postgres_pids()}

        def used() -> dict[str, float]:
            # This process alone: the cluster's processes are its children, counted apart.
            return {
                **{name: tree_cpu_seconds(pid) for name, pid in processes.items()},
                "participants": cpu_seconds(os.getpid()),
            }

        cpu_before = used()
        with CPUSampler(used) as sampler:
            elapsed = asyncio.run(everyone())
        cpu = {
            name: round((seconds - cpu_before[name]) / elapsed, 2)
            for name, seconds in used().items()
        }
        memory = {name: round(tree_peak_rss_mib(pid), 1) for name, pid in c.pids().items()}
    replies = [s * 1000 for v in visitors for s in v.turn_seconds]
    requests = log.count()
    per_kind = log.summary()
    worst_p99 = max((k["p99_ms"] for k in per_kind.values()), default=math.nan)
    result = {
        "participants": args.participants,
        "speed_up": args.speed_up,
        "arrivals_over_seconds": args.arrivals_over,
        "in_flight_peak": flight["peak"],
        # At --speed-up 1, about the reference deployment's median participant time.
        "journey_minutes_p50": round(percentile(journeys, 50) / 60, 1),
        "reference_median_minutes": REFERENCE_MEDIAN_MINUTES,
        "elapsed_seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "replies": len(replies),
        "reply_ms_p50": round(percentile(replies, 50), 1),
        "reply_ms_p99": round(percentile(replies, 99), 1),
        "per_kind": per_kind,
        "worst_non_llm_p99_ms": worst_p99,
        "errors": len(errors) + sum(log.failed.values()),
        "error_kinds": sorted(set(errors))[:10],
        "peak_rss_mib": memory,
        "cpu_share_of_one_core": cpu,
        # The same over the busiest minute: what the machine had left when it mattered.
        "cpu_share_of_one_core_busiest_minute": sampler.busiest(60.0),
        "within_target": not errors
        and not sum(log.failed.values())
        and worst_p99 < TARGET_P99_MS
        and flight["peak"] >= args.participants,
    }
    for kind, figures in per_kind.items():
        print(f"{kind:>15}: {figures}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

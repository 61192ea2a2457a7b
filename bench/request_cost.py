"""Benchmark: the CPU that one participant's journey costs the server, by kind of request.

The load benchmark (bench/load.py) says how long requests wait; this one says why they wait on a
2-core machine: what each kind of request costs in CPU time, measured one request at a time on
the multi-process setup (deploy/scaleout.py's: a database of its own on DATABASE_URL's
PostgreSQL server, REDIS_URL, Celery workers, the fake model), so that nothing else runs in the
ASGI server while it is measured. N simulated participants go through the journey one after the
other: join, a three-message interview over websockets, card, matching and vote; once the
workers have written the upgrade stories (and are idle again), each judges them and sees the
end page.

Printed per kind: how many requests, the ASGI server's CPU milliseconds per request (user +
system, from /proc; summed over all requests of the kind, so the 10 ms clock tick averages
out), and PostgreSQL's (its backends together; in the first phase the workers' own queries are
counted in it too). Then one journey's total, and what N participants in flight would need
of the machine's cores on average if their journeys took --journey-seconds (bench/load.py's
median journey at a person's pace: 21 minutes, the reference deployment's median participant
time; its busiest minute asks more than the average). Earlier sessions' faster pace, three
messages after some 22 s each on average and four stories after some 9 s, is
--journey-seconds 160.

Usage: DATABASE_URL=postgres://... REDIS_URL=redis://... python bench/request_cost.py [-n 30]
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import Visitor, cluster, cpu_seconds  # noqa: E402
from bench.load import postgres_pids, tree_cpu_seconds  # noqa: E402


class CPUMeter:
    """CPU seconds of the ASGI server and of PostgreSQL, charged to the kind of the request (or
    of the step) during which they were spent."""

    def __init__(self, web_pid: int, postgres_pid: int | None) -> None:
        self.web_pid, self.postgres_pid = web_pid, postgres_pid
        self.costs: dict[str, list[float]] = {}  # kind -> [count, web s, postgres s]

    def read(self) -> tuple[float, float]:
        postgres = tree_cpu_seconds(self.postgres_pid) if self.postgres_pid else 0.0
        return cpu_seconds(self.web_pid), postgres

    def charge(self, kind: str, before: tuple[float, float], count: int = 1) -> None:
        after = self.read()
        entry = self.costs.setdefault(kind, [0, 0.0, 0.0])
        entry[0] += count
        entry[1] += after[0] - before[0]
        entry[2] += after[1] - before[1]


class MeteredVisitor(Visitor):
    meter: CPUMeter

    async def request(self, kind, method, path, **kwargs):
        before = self.meter.read()
        try:
            return await super().request(kind, method, path, **kwargs)
        finally:
            self.meter.charge(kind, before)


def pipeline_busy(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        (busy,) = conn.execute(
            "SELECT count(*) FROM graph_pipelinejob WHERE status IN ('queued', 'running')"
        ).fetchone()
    return busy > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--participants", type=int, default=30)
    parser.add_argument("--journey-seconds", type=float, default=21 * 60.0)
    parser.add_argument("--in-flight", type=int, default=1000)
    args = parser.parse_args()

    name = f"moralgraph_cost_{uuid.uuid4().hex[:8]}"
    with cluster(web=1, workers=1, database_name=name, tokens_per_second=2000.0) as c:
        meter = CPUMeter(c.pids()["web1"], postgres_pids().get("postgresql"))
        visitors = []
        for i in range(args.participants):
            visitor = MeteredVisitor(c.servers, i)
            visitor.meter = meter
            visitors.append(visitor)

        async def run() -> None:
            for visitor in visitors:
                await visitor.join()
                before = meter.read()
                await visitor.interview()  # 3 websocket connections, 3 streamed replies
                meter.charge("interview turn", before, count=3)
                await visitor.confirm_card()
                await visitor.match()
                await visitor.vote()
            deadline = time.monotonic() + 300
            await asyncio.sleep(2)
            while pipeline_busy(c.env["DATABASE_URL"]) and time.monotonic() < deadline:
                await asyncio.sleep(1)
            for visitor in visitors:
                await visitor.judge()
                await visitor.done()
                await visitor.close()

        asyncio.run(run())

    n = args.participants
    per_kind = {
        kind: {
            "count": count,
            "web_cpu_ms": round(1000 * web / count, 2),
            "postgresql_cpu_ms": round(1000 * postgres / count, 2),
        }
        for kind, (count, web, postgres) in sorted(meter.costs.items())
    }
    journey_web = sum(entry[1] for entry in meter.costs.values()) / n
    journey_postgres = sum(entry[2] for entry in meter.costs.values()) / n
    for kind, figures in per_kind.items():
        print(f"{kind:>15}: {figures}")
    result = {
        "participants": n,
        "per_kind": per_kind,
        "requests_per_journey": round(
            sum(e[0] for k, e in meter.costs.items() if k != "interview turn") / n, 1
        ),
        "journey_web_cpu_ms": round(1000 * journey_web, 1),
        "journey_postgresql_cpu_ms": round(1000 * journey_postgres, 1),
        "in_flight": args.in_flight,
        "journey_seconds": args.journey_seconds,
        # Web and PostgreSQL alone; the workers, the load generator and the fake model come on top.
        "cores_needed": round(
            args.in_flight * (journey_web + journey_postgres) / args.journey_seconds, 2
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

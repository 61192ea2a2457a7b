"""Benchmark: concurrent interviews over real websockets against the fake LLM.

It starts the fake OpenAI-compatible server (streaming about 150 tokens per reply at 30 tokens
per second, each piece stamped with the time the fake sent it) and the application (one uvicorn
process on a fresh SQLite database, or on a database of its own, created on the server that
DATABASE_URL names and dropped at the end, with the REDIS_URL you pass), then runs N
simulated participants. Each joins over HTTP, opens the interview websocket and alternates: a
think time drawn from a log-normal distribution like a person's (median 20 s, scaled by
--think-scale, printed), a message, and the streamed reply.

Measured on the participant's side:
- first token added: from sending the message to the first token on the websocket, minus the
  model's own first-token delay (zero in the fake): what the application adds (saving the
  message, building the prompt, calling the model, relaying); split into its two halves,
  to_model (sending to the fake's receipt of the request) and first_relay (the fake's first
  token to the "browser"), to show where the time goes;
- stream lag: for every token, arrival in the "browser" minus the fake's send stamp;
- replies streaming at the same moment (peak), errors, and the server's peak memory (VmHWM).

With --pin, the application runs on CPU 0 and the load generator (the fake model and the
simulated participants) on the other CPUs, as if they were on machines of their own; without it,
all of them share every CPU, and the load generator's bursts land in the application's figures.
(The database server, if any, is not pinned.) The JSON says which was used.

Usage: python bench/interviews.py [--interviews 500] [--turns 3] [--think-scale 1.0] [--pin]
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import (  # noqa: E402
    Visitor,
    cpu_seconds,
    create_database,
    database_url_named,
    drop_database,
    free_port,
    peak_rss_mib,
    percentile,
    wait_http,
)

PYTHON = sys.executable
STAMP = re.compile(r"@(\d+\.\d+)@")
RECEIVED = re.compile(r"#(\d+\.\d+)#")
MEDIAN_THINK_SECONDS = 20.0


@dataclass
class Stats:
    first_token_ms: list[float] = field(default_factory=list)
    first_token_later_turns_ms: list[float] = field(default_factory=list)
    # The two halves of first_token_ms: until the model has the request, and from the model's
    # first token to the browser.
    to_model_ms: list[float] = field(default_factory=list)
    first_relay_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    replies: int = 0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    streaming_now: int = 0
    streaming_peak: int = 0


async def enrol(base: str, limit: asyncio.Semaphore) -> tuple[int, str]:
    """Join over HTTP as a browser would: the set-up, not what is measured."""
    async with limit:
        visitor = Visitor([base], 0)
        try:
            interview_id = await visitor.join()
            return interview_id, "; ".join(f"{k}={v}" for k, v in visitor.http.cookies.items())
        finally:
            await visitor.close()


async def participant(
    base: str,
    interview_id: int,
    cookies: str,
    stats: Stats,
    *,
    turns: int,
    think_scale: float,
    rng: random.Random,
) -> None:
    ws_url = base.replace("http://", "ws://") + f"/ws/interview/{interview_id}/"
    async with websockets.connect(
        ws_url,
        additional_headers={"Cookie": cookies, "Origin": base},
        max_size=2**22,
        open_timeout=60,
        ping_interval=None,
    ) as ws:
        await asyncio.wait_for(ws.recv(), 60)  # the catch-up frame
        for turn in range(turns):
            think = rng.lognormvariate(math.log(MEDIAN_THINK_SECONDS), 0.5) * think_scale
            await asyncio.sleep(think)
            await one_turn(ws, turn, stats)


async def one_turn(ws, turn: int, stats: Stats) -> None:
    sent = time.time()
    await ws.send(
        json.dumps(
            {
                "message": f"Answer {turn}: what matters is care.",
                "client_id": uuid.uuid4().hex,
                "HEADERS": {},
            }
        )
    )
    first, streaming = True, False
    try:
        while True:
            frame = await asyncio.wait_for(ws.recv(), 60)
            arrived = time.time()
            if frame.startswith("<span") and "beforeend:#m-" in frame:
                stamps = [float(s) for s in STAMP.findall(frame)]
                if first and stamps:
                    first, streaming = False, True
                    stats.streaming_now += 1
                    stats.streaming_peak = max(stats.streaming_peak, stats.streaming_now)
                    received = RECEIVED.search(frame)
                    model_time = stamps[0] - float(received.group(1)) if received else 0.0
                    added = (arrived - sent - model_time) * 1000
                    stats.first_token_ms.append(added)
                    if received:
                        stats.to_model_ms.append((float(received.group(1)) - sent) * 1000)
                        stats.first_relay_ms.append((arrived - stamps[0]) * 1000)
                    if turn > 0:  # the first turn of an interview also warms its caches
                        stats.first_token_later_turns_ms.append(added)
                stats.lag_ms.extend((arrived - s) * 1000 for s in stamps)
                stats.tokens += len(stamps)
            elif "Send</button>" in frame:  # the final frame re-enables the composer
                if "broke off" in frame or "not reachable" in frame or "too long" in frame:
                    stats.errors.append("reply failed")
                stats.replies += 1
                return
            elif 'id="composer-error"' in frame:
                error = re.search(r'role="alert"[^>]*>([^<]+)<', frame)
                if error:
                    stats.errors.append(f"rejected: {error.group(1)[:80]}")
                    return
    except TimeoutError:
        stats.errors.append("timeout waiting for the reply")
    finally:
        if streaming:
            stats.streaming_now -= 1


async def run_participants(
    base: str, args, interviews: int, pids: dict[str, int]
) -> tuple[Stats, float, dict]:
    stats = Stats()
    rng = random.Random(args.seed)
    limit = asyncio.Semaphore(20)
    enrolled = await asyncio.gather(*(enrol(base, limit) for _ in range(interviews)))

    async def run(interview_id: int, cookies: str, seed: float) -> None:
        try:
            await participant(
                base,
                interview_id,
                cookies,
                stats,
                turns=args.turns,
                think_scale=args.think_scale,
                rng=random.Random(seed),
            )
        except Exception as error:  # any failure of a simulated participant is an error
            stats.errors.append(f"{type(error).__name__}: {error}"[:200])

    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.gather(*(run(i, c, rng.random()) for i, c in enrolled))
    elapsed = time.monotonic() - started
    # Share of one core each process used while the participants ran (the machine has 2).
    cpu = {
        name: round((cpu_seconds(pid) - cpu_before[name]) / elapsed, 2)
        for name, pid in pids.items()
    }
    return stats, elapsed, cpu


TARGETS = {"first_token_added_ms_p99": 50.0, "stream_lag_ms_p99": 100.0}


def within_bounds(result: dict) -> bool:
    return result["errors"] == 0 and all(result[key] < limit for key, limit in TARGETS.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interviews", type=int, default=500)
    parser.add_argument(
        "--ladder",
        default="",
        help="comma-separated interview counts to run one after the other (e.g. 50,100,200); "
        "reports the largest that stays within the targets",
    )
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--think-scale", type=float, default=1.0)
    parser.add_argument("--tokens-per-second", type=float, default=30.0)
    parser.add_argument("--reply-tokens", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the application on CPU 0, the fake model and the participants on the others",
    )
    args = parser.parse_args()
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs at least two CPUs")
    sizes = [int(n) for n in args.ladder.split(",") if n.strip()] or [args.interviews]
    results = [run_once(args, n) for n in sizes]
    for result in results:
        print(json.dumps(result), flush=True)
    if len(results) == 1:
        print(json.dumps(results[0]))
        return
    sustained = [r for r in results if within_bounds(r)]
    print(
        json.dumps(
            {
                "targets": TARGETS,
                "runs": results,
                "largest_interviews_within_targets": max(
                    (r["interviews"] for r in sustained), default=None
                ),
                "largest_streaming_peak_within_targets": max(
                    (r["replies_streaming_peak"] for r in sustained), default=None
                ),
            }
        )
    )


every_cpu = os.sched_getaffinity(0)


def cpu_split(pin: bool) -> tuple[set[int], set[int]]:
    """With --pin: the application's CPU, and the load generator's (the rest)."""
    if not pin:
        return set(), set()
    first = min(every_cpu)
    return {first}, every_cpu - {first}


def pinned(cpus: set[int]) -> list[str]:
    """A command prefix that runs a process (and every thread it starts) on these CPUs."""
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


def run_once(args, interviews: int) -> dict:
    var_dir = Path(tempfile.mkdtemp(prefix="mge-bench-"))
    fake_port, app_port = free_port(), free_port()
    env = dict(
        os.environ,
        VAR_DIR=str(var_dir),
        DEBUG="false",
        SECRET_KEY="b" * 50,
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        SECURE_HSTS_SECONDS="0",
        LLM_BASE_URL=f"http://127.0.0.1:{fake_port}/v1",
        LLM_API_KEY="bench",
        MESSAGES_PER_MINUTE="100000",
        # Every simulated participant comes from 127.0.0.1: lift the per-address limits.
        RATE_LIMIT_ADDRESS_PER_MINUTE="1000000",
        RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR="1000000",
        MODERATION_BACKEND="rules",
        LOG_LEVEL="warning",
    )
    # A PostgreSQL database of its own for each run: rows left by an earlier run would make the
    # next one measure a bigger database.
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("postgres"):
        database_url = database_url_named(database_url, f"mge_bench_interviews_{os.getpid()}")
        env["DATABASE_URL"] = database_url
        create_database(database_url)
    processes = []
    app_cpus, load_cpus = cpu_split(args.pin)
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        subprocess.run(
            [PYTHON, "manage.py", "seed_demo"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        fake = subprocess.Popen(
            [
                *pinned(load_cpus),
                PYTHON,
                "-m",
                "tests.fakellm",
                "--port",
                str(fake_port),
                "--stamp-tokens",
                "--tokens-per-second",
                str(args.tokens_per_second),
                "--reply-tokens",
                str(args.reply_tokens),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        processes.append(fake)
        app = subprocess.Popen(
            [
                *pinned(app_cpus),
                str(Path(PYTHON).with_name("uvicorn")),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(app_port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "4096",
                "--ws-per-message-deflate",
                "false",
            ],
            cwd=ROOT,
            env=env,
        )
        processes.append(app)
        wait_http(f"http://127.0.0.1:{fake_port}/v1/models")
        wait_http(f"http://127.0.0.1:{app_port}/healthz")
        print(
            f"interviews={interviews} turns={args.turns} think-scale={args.think_scale} "
            f"(median think {MEDIAN_THINK_SECONDS * args.think_scale:.1f} s) "
            f"reply={args.reply_tokens} tokens at {args.tokens_per_second}/s",
            flush=True,
        )
        if load_cpus:
            os.sched_setaffinity(0, load_cpus)  # this process: the participants
        pids = {"server": app.pid, "fake_llm": fake.pid, "client": os.getpid()}
        stats, elapsed, cpu = asyncio.run(
            run_participants(f"http://127.0.0.1:{app_port}", args, interviews, pids)
        )
        peak_mib = peak_rss_mib(app.pid)
    finally:
        os.sched_setaffinity(0, every_cpu)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(var_dir, ignore_errors=True)
        if database_url.startswith("postgres"):
            drop_database(database_url)

    result = {
        "interviews": interviews,
        "turns": args.turns,
        "think_scale": args.think_scale,
        "median_think_seconds": MEDIAN_THINK_SECONDS * args.think_scale,
        "replies": stats.replies,
        "tokens_relayed": stats.tokens,
        "first_token_added_ms_p50": round(percentile(stats.first_token_ms, 50), 1),
        "first_token_added_ms_p99": round(percentile(stats.first_token_ms, 99), 1),
        "first_token_added_ms_p99_later_turns": round(
            percentile(stats.first_token_later_turns_ms, 99), 1
        ),
        "to_model_ms_p50": round(percentile(stats.to_model_ms, 50), 1),
        "to_model_ms_p99": round(percentile(stats.to_model_ms, 99), 1),
        "first_relay_ms_p50": round(percentile(stats.first_relay_ms, 50), 1),
        "first_relay_ms_p99": round(percentile(stats.first_relay_ms, 99), 1),
        "stream_lag_ms_p50": round(percentile(stats.lag_ms, 50), 1),
        "stream_lag_ms_p99": round(percentile(stats.lag_ms, 99), 1),
        "replies_streaming_peak": stats.streaming_peak,
        "errors": len(stats.errors),
        "error_kinds": sorted(set(stats.errors))[:10],
        "server_peak_rss_mib": round(peak_mib, 1),
        "elapsed_seconds": round(elapsed, 1),
        "mean_lag_ms": round(statistics.fmean(stats.lag_ms), 1) if stats.lag_ms else None,
        "cpu_share_of_one_core": cpu,
        "pinned": {"server": sorted(app_cpus), "load": sorted(load_cpus)} if args.pin else None,
    }
    return result


if __name__ == "__main__":
    main()

"""Benchmark: the CPU the server spends per token it reads from the model, per HTTP stack.

The interviews' limit on a 2-core machine is the CPU of the server's core while hundreds of
replies stream (bench/interviews.py), and reading the model's event stream is a large part of
it. This measures that part alone: `elicit.llm.stream_chat`, the function the interviews use,
reads --replies concurrent replies of --tokens tokens from the fake OpenAI-compatible server
(run as a process of its own, on another CPU when there is one), with each LLM_HTTP_CLIENT
setting in turn, interleaved over --rounds rounds. The figure is this process's CPU time
(`time.process_time`) per text delta received, best of the rounds, in microseconds.

Usage: python bench/llm_client.py [--replies 100] [--tokens 150] [--rounds 5]
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.journey import free_port, stop, wait_http  # noqa: E402

STACKS = ("aiohttp", "httpx")


async def read_replies(replies: int) -> int:
    from elicit import llm

    async def one() -> int:
        deltas = 0
        async for event in llm.stream_chat([{"role": "user", "content": "Hi"}], model="m"):
            deltas += isinstance(event, llm.TextDelta)
        return deltas

    return sum(await asyncio.gather(*(one() for _ in range(replies))))


async def measure(stack: str, replies: int) -> float:
    """Microseconds of CPU per delta for one round of concurrent replies on `stack`."""
    from django.conf import settings

    settings.LLM_HTTP_CLIENT = stack
    await read_replies(1)  # the client and its connection exist before the clock starts
    started = time.process_time()
    deltas = await read_replies(replies)
    return (time.process_time() - started) / deltas * 1e6


async def run(args: argparse.Namespace) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for stack in STACKS:
            figure = await measure(stack, args.replies)
            best[stack] = min(best.get(stack, figure), figure)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    port = free_port()
    cpus = sorted(os.sched_getaffinity(0))
    fake_cpus, own_cpus = (cpus[1:], cpus[:1]) if len(cpus) > 1 else (cpus, cpus)
    command = [sys.executable, "-m", "tests.fakellm", "--port", str(port)]
    command += ["--reply-tokens", str(args.tokens), "--tokens-per-second", "300"]
    fake = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, fake_cpus),
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_http(f"{base_url}/models", process=fake)
        os.sched_setaffinity(0, own_cpus)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        os.environ["LLM_BASE_URL"] = base_url
        import django

        django.setup()
        best = asyncio.run(run(args))
    finally:
        stop(fake)
    for stack in STACKS:
        print(f"{stack:8} {best[stack]:6.1f} us of CPU per delta (best of {args.rounds})")
    print(
        json.dumps(
            {
                "replies": args.replies,
                "tokens_per_reply": args.tokens,
                "rounds": args.rounds,
                "cpu_us_per_delta": {stack: round(best[stack], 1) for stack in STACKS},
            }
        )
    )


if __name__ == "__main__":
    main()

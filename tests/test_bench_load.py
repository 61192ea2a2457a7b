"""bench/load.py's reading of the run's busiest minute, on samples made up here."""

import time

from bench.load import CPUSampler


def sampler_with(samples: list[tuple[float, dict[str, float]]]) -> CPUSampler:
    sampler = CPUSampler(read=dict)
    sampler.samples = samples
    return sampler


def test_the_busiest_minute_is_the_one_the_processes_used_most_together():
    # Web idle for a minute, then a full core for a minute while the database used half,
    # then idle again: the run's average (0.33 and 0.17) hides the minute that was busy.
    samples = [(0.0, {"web": 0.0, "db": 0.0})]
    for t in range(10, 181, 10):
        busy = min(max(t - 60, 0), 60)
        samples.append((float(t), {"web": busy * 1.0, "db": busy * 0.5}))
    assert sampler_with(samples).busiest(60.0) == {"web": 1.0, "db": 0.5}


def test_a_run_shorter_than_the_window_has_no_busiest_minute():
    samples = [(0.0, {"web": 0.0}), (30.0, {"web": 10.0})]
    assert sampler_with(samples).busiest(60.0) == {}


def test_the_sampler_reads_until_it_is_stopped():
    reads = iter(range(1000))
    with CPUSampler(read=lambda: {"web": float(next(reads))}, every=0.01) as sampler:
        while len(sampler.samples) < 3:
            time.sleep(0.01)
    count = len(sampler.samples)
    assert count >= 3
    assert [s[1]["web"] for s in sampler.samples] == list(range(count))

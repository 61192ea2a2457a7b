"""Simulated participants with a planted truth: how well does the scoring find it?

Pure (numpy and scipy, no Django) and seeded: the same settings and seed give the same
judgments, the same scores and the same report, bit for bit. Used by pilot deliberations
(graph/pilots.py), by the research pilot page, and by bench/recovery.py.

The model of a participant, deliberately simple so that its assumptions can be read here:

- **Planted wisdom.** Each context has ``n_values`` values with a wisdom level each, evenly
  spaced over ``spread`` (logits): the wisest value sits ``spread`` above the least wise.
  The order is random per context unless the researcher writes one (wisest first).
- **Stories.** Every ordered pair of values in every context is a possible story. Each
  participant judges ``judgments_per_participant`` distinct stories drawn uniformly, never
  the same pair twice (as the real routing guarantees), in a random direction.
- **Honest judges.** Shown "A -> B", a judge answers "not sure" with chance
  ``unsure_share``; otherwise "upgrade" with chance sigmoid((wisdom[B] - wisdom[A]) / noise)
  and "not an upgrade" otherwise. ``noise`` = 1 is the setting of the research issue; larger
  is noisier. This is exactly a Bradley-Terry model, which favours that estimator: treat the
  comparison as "how well does each estimator do when the judges behave as assumed".
- **Own value.** Each honest participant wrote a card for one value, drawn uniformly.
- **Time.** Honest participants arrive uniformly over ``duration_hours``; reading a story
  takes a log-normal time with median ``median_read_seconds``.
- **Faction** (optional). A share ``faction_share`` of the participants hold one value (by
  default the value of middle planted rank in every context) and push it: they arrive
  within ``faction_window_minutes`` of each other, every story they judge involves their
  value (they wrote the cards that make it popular, and popular values get paired), and they
  decide every one in its favour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from graph import algorithms, quality

__all__ = [
    "Simulation",
    "SimulationSettings",
    "kendall_tau",
    "power_analysis",
    "recovery",
    "simulate",
]


@dataclasses.dataclass(frozen=True)
class SimulationSettings:
    """Everything a simulation depends on (with the seed)."""

    n_values: int = 20
    n_contexts: int = 2
    n_participants: int = 200
    judgments_per_participant: int = 5
    noise: float = 1.0
    spread: float = 6.0
    unsure_share: float = 0.0
    faction_share: float = 0.0
    faction_value: int | None = None
    planted: tuple[tuple[int, ...], ...] | None = None
    duration_hours: float = 48.0
    faction_window_minutes: float = 15.0
    median_read_seconds: float = 25.0

    def __post_init__(self) -> None:
        if self.n_values < 2 or self.n_contexts < 1:
            raise ValueError("a simulation needs at least 2 values and 1 context")
        if self.n_participants < 1 or self.judgments_per_participant < 1:
            raise ValueError("a simulation needs participants who judge something")
        if (
            self.judgments_per_participant
            > self.n_contexts * self.n_values * (self.n_values - 1) // 2
        ):
            raise ValueError("more judgments per participant than there are pairs")
        if self.noise <= 0 or self.spread < 0:
            raise ValueError("noise must be > 0 and spread >= 0")
        if not 0 <= self.unsure_share < 1 or not 0 <= self.faction_share < 1:
            raise ValueError("unsure_share and faction_share must be in [0, 1)")
        if self.faction_value is not None and not 0 <= self.faction_value < self.n_values:
            raise ValueError("faction_value must be one of the values (0 .. n_values - 1)")
        if self.planted is not None:
            for order in self.planted:
                if sorted(order) != list(range(self.n_values)):
                    raise ValueError(
                        f"a planted order must list each value 0 .. {self.n_values - 1} once"
                    )
            if len(self.planted) not in (1, self.n_contexts):
                raise ValueError("give one planted order for all contexts, or one per context")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["planted"] = [list(o) for o in self.planted] if self.planted else None
        return data


@dataclasses.dataclass(frozen=True, eq=False)
class Simulation:
    """Simulated judgments with their planted truth. Values are 0 .. n_values - 1 and contexts
    0 .. n_contexts - 1; ``wisdom[c, v]`` is value v's planted wisdom in context c."""

    settings: SimulationSettings
    wisdom: np.ndarray
    rows: quality.VoteRows
    own_value: np.ndarray  # per participant
    faction: np.ndarray  # participant ids of the faction
    faction_value: int | None

    def judgments(self, keep: np.ndarray | None = None) -> algorithms.JudgmentArrays:
        rows = self.rows
        mask = np.ones(len(rows), dtype=bool) if keep is None else keep
        return algorithms.JudgmentArrays(
            participant=rows.participant[mask],
            context=rows.context[mask],
            from_value=rows.from_value[mask],
            to_value=rows.to_value[mask],
            verdict=rows.verdict[mask],
        )

    def values_by_context(self) -> dict[int, list[int]]:
        n = self.settings.n_values
        return {c: list(range(n)) for c in range(self.settings.n_contexts)}

    def own_values(self) -> dict[int, list[int]]:
        return {p: [int(v)] for p, v in enumerate(self.own_value.tolist())}

    def best(self, context: int) -> int:
        return int(np.argmax(self.wisdom[context]))


def _planted_wisdom(settings: SimulationSettings, rng: np.random.Generator) -> np.ndarray:
    n, spread = settings.n_values, settings.spread
    levels = np.linspace(spread / 2, -spread / 2, n)  # wisest first
    wisdom = np.empty((settings.n_contexts, n))
    for c in range(settings.n_contexts):
        if settings.planted is None:
            order = rng.permutation(n)
        else:
            order = np.asarray(settings.planted[c % len(settings.planted)])
        wisdom[c, order] = levels
    return wisdom


def simulate(settings: SimulationSettings, seed: int) -> Simulation:
    """Draw one simulated deliberation (see the module docstring for the model)."""
    rng = np.random.default_rng(seed)
    n, n_contexts, k = settings.n_values, settings.n_contexts, settings.judgments_per_participant
    wisdom = _planted_wisdom(settings, rng)
    n_people = settings.n_participants
    n_faction = round(settings.faction_share * n_people)
    n_honest = n_people - n_faction

    # Honest participants: k distinct unordered pairs each (argpartition of random keys).
    low, high = np.triu_indices(n, 1)
    n_pairs = len(low)
    keys = rng.random((n_honest, n_contexts * n_pairs))
    picks = np.argpartition(keys, k - 1, axis=1)[:, :k] if n_honest else np.zeros((0, k), int)
    context = (picks // n_pairs).reshape(-1)
    pair = (picks % n_pairs).reshape(-1)
    flip = rng.random(pair.size) < 0.5
    from_value = np.where(flip, high[pair], low[pair])
    to_value = np.where(flip, low[pair], high[pair])
    gap = (wisdom[context, to_value] - wisdom[context, from_value]) / settings.noise
    upgrade = rng.random(pair.size) < 1.0 / (1.0 + np.exp(-gap))
    verdict = np.where(upgrade, quality.UPGRADE, quality.NOT_UPGRADE)
    verdict = np.where(rng.random(pair.size) < settings.unsure_share, quality.UNSURE, verdict)
    participant = np.repeat(np.arange(n_honest), k)
    arrival = np.repeat(rng.random(n_honest) * settings.duration_hours * 3600, k)
    own = rng.integers(0, n, n_honest)

    # The faction: stories involving its value, decided in its favour, in a burst.
    faction_value = None
    if n_faction:
        faction_value = settings.faction_value
        if faction_value is None:
            faction_value = int(np.argsort(-wisdom[0], kind="stable")[n // 2])
        f_context = np.empty((n_faction, k), dtype=np.int64)
        f_other = np.empty((n_faction, k), dtype=np.int64)
        others = np.array([v for v in range(n) if v != faction_value])
        for i in range(n_faction):  # k distinct (context, other value) per member
            chosen = rng.choice(n_contexts * len(others), size=k, replace=False)
            f_context[i], f_other[i] = chosen // len(others), others[chosen % len(others)]
        f_context, f_other = f_context.reshape(-1), f_other.reshape(-1)
        towards = rng.random(f_other.size) < 0.5
        context = np.concatenate([context, f_context])
        from_value = np.concatenate([from_value, np.where(towards, f_other, faction_value)])
        to_value = np.concatenate([to_value, np.where(towards, faction_value, f_other)])
        verdict = np.concatenate([verdict, np.where(towards, quality.UPGRADE, quality.NOT_UPGRADE)])
        participant = np.concatenate([participant, np.repeat(np.arange(n_honest, n_people), k)])
        start = rng.random() * max(settings.duration_hours * 3600 - 3600, 0)
        burst = start + rng.random(n_faction) * settings.faction_window_minutes * 60
        arrival = np.concatenate([arrival, np.repeat(burst, k)])
        own = np.concatenate([own, np.full(n_faction, faction_value)])

    # Reading times; each participant's stories one after the other.
    read = settings.median_read_seconds * np.exp(0.5 * rng.standard_normal(len(participant)))
    position = np.tile(np.arange(k), n_people)
    elapsed = np.zeros(len(participant))
    per_person = (read + 2.0).reshape(n_people, k)
    elapsed = (np.cumsum(per_person, axis=1) - per_person).reshape(-1)
    shown_at = arrival + elapsed
    answered_at = shown_at + read
    del position
    story = (context * n + from_value) * n + to_value
    rows = quality.VoteRows(
        judgment=np.arange(len(participant)),
        participant=participant,
        story=story,
        context=context,
        from_value=from_value,
        to_value=to_value,
        verdict=verdict,
        shown_at=shown_at,
        answered_at=answered_at,
    )
    return Simulation(
        settings=settings,
        wisdom=wisdom,
        rows=rows,
        own_value=own,
        faction=np.arange(n_honest, n_people),
        faction_value=faction_value,
    )


def kendall_tau(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Kendall's tau-b between planted wisdom and estimated scores (ties in the estimate
    count as half-agreements); 0 when either side does not separate any values."""
    if np.ptp(estimate) == 0 or np.ptp(truth) == 0:
        return 0.0
    return float(stats.kendalltau(truth, estimate).statistic)


ESTIMATORS = (algorithms.Estimator.PAGERANK, algorithms.Estimator.BRADLEY_TERRY)


def _estimates(context: algorithms.ContextResult) -> dict[str, np.ndarray]:
    assert context.bradley_terry is not None
    return {
        algorithms.Estimator.PAGERANK: context.score_array,
        algorithms.Estimator.BRADLEY_TERRY: context.bradley_terry.strength,
    }


def recovery(
    simulation: Simulation,
    result: algorithms.ScoringResult,
) -> dict[str, dict[str, float]]:
    """Per estimator: mean Kendall tau over contexts, and the share of contexts whose sole
    winner is the planted wisest value."""
    out: dict[str, dict[str, float]] = {}
    for estimator in ESTIMATORS:
        taus, found = [], []
        for c in range(simulation.settings.n_contexts):
            context = result.contexts[c]
            order = context.values  # 0 .. n - 1, ascending
            taus.append(kendall_tau(simulation.wisdom[c, order], _estimates(context)[estimator]))
            found.append(context.winners_by(estimator) == (simulation.best(c),))
        out[str(estimator)] = {"tau": float(np.mean(taus)), "winner_found": float(np.mean(found))}
    return out


def score_simulation(
    simulation: Simulation,
    params: algorithms.ScoringParams,
    keep: np.ndarray | None = None,
) -> algorithms.ScoringResult:
    return algorithms.score(
        simulation.judgments(keep), params, values_by_context=simulation.values_by_context()
    )


def faction_effect(
    simulation: Simulation,
    params: algorithms.ScoringParams,
    quality_settings: quality.QualitySettings,
) -> dict[str, Any]:
    """Which participants the vote-quality rules flag, and where the faction's value ends up
    with flagged data included and excluded (per estimator: share of the contexts where it is
    not the planted wisest value in which it nevertheless wins)."""
    rows = simulation.rows
    findings = quality.find_all(rows, simulation.own_values(), quality_settings)
    flagged = np.isin(rows.participant, sorted(findings.flagged_participants())) | np.isin(
        rows.judgment, sorted(findings.flagged_judgments())
    )
    faction = set(simulation.faction.tolist())
    flagged_people = findings.flagged_participants()
    honest = simulation.settings.n_participants - len(faction)
    report: dict[str, Any] = {
        "faction_size": len(faction),
        "faction_flagged": len(flagged_people & faction) / max(len(faction), 1),
        "honest_flagged": len(flagged_people - faction) / max(honest, 1),
        "judgments_flagged": float(flagged.mean()) if len(flagged) else 0.0,
        "by_reason": {
            reason: len(ids)
            for reason, ids in {**findings.participants, **findings.judgments}.items()
        },
    }
    for label, keep in (("included", None), ("excluded", ~flagged)):
        result = score_simulation(simulation, params, keep)
        # Only contexts where the faction's value is not truly the wisest: winning there is
        # the faction's doing (or the estimator's error), not the truth coming out.
        contexts = [
            c
            for c in range(simulation.settings.n_contexts)
            if simulation.best(c) != simulation.faction_value
        ]
        wins = {}
        for estimator in ESTIMATORS:
            won = [
                simulation.faction_value in result.contexts[c].winners_by(estimator)
                for c in contexts
            ]
            wins[str(estimator)] = float(np.mean(won)) if won else 0.0
        report[f"faction_wins_{label}"] = wins
        report[f"recovery_{label}"] = recovery(simulation, result)
    return report


def power_analysis(
    settings: SimulationSettings,
    *,
    participants: Sequence[int],
    repeats: int,
    seed: int,
    params: algorithms.ScoringParams | None = None,
    quality_settings: quality.QualitySettings | None = None,
) -> dict[str, Any]:
    """For each participant count, *repeats* simulations: per estimator the mean and spread
    of Kendall tau and the share of (run, context) in which the planted winner is found alone
    (with a faction, on all the data, faction included); with a faction, also how often it
    was flagged, how often its value won and the mean tau, with and without the flagged data.
    Repeat r of size n uses the seed (seed, n, r)."""
    params = params or algorithms.ScoringParams()
    quality_settings = quality_settings or quality.QualitySettings()
    sizes = []
    for n in participants:
        sized = dataclasses.replace(settings, n_participants=int(n))
        taus: dict[str, list[float]] = {str(e): [] for e in ESTIMATORS}
        found: dict[str, list[float]] = {str(e): [] for e in ESTIMATORS}
        factions = []
        for r in range(repeats):
            simulation = simulate(sized, seed=hash_seed(seed, int(n), r))
            if sized.faction_share > 0 and len(simulation.faction):
                effect = faction_effect(simulation, params, quality_settings)
                factions.append(effect)
                scores = effect["recovery_included"]
            else:
                scores = recovery(simulation, score_simulation(simulation, params))
            for estimator, figures in scores.items():
                taus[estimator].append(figures["tau"])
                found[estimator].append(figures["winner_found"])
        entry: dict[str, Any] = {"participants": int(n), "repeats": repeats}
        for estimator in taus:
            t = np.asarray(taus[estimator])
            entry[estimator] = {
                "tau_mean": float(t.mean()),
                "tau_p10": float(np.quantile(t, 0.1)),
                "tau_p90": float(np.quantile(t, 0.9)),
                "winner_found": float(np.mean(found[estimator])),
            }
        if factions:
            entry["faction"] = {
                "faction_flagged": float(np.mean([f["faction_flagged"] for f in factions])),
                "honest_flagged": float(np.mean([f["honest_flagged"] for f in factions])),
                "wins_included": {
                    str(e): float(np.mean([f["faction_wins_included"][e] for f in factions]))
                    for e in ESTIMATORS
                },
                "wins_excluded": {
                    str(e): float(np.mean([f["faction_wins_excluded"][e] for f in factions]))
                    for e in ESTIMATORS
                },
                # How far the faction pulled the result away from the truth: mean tau with
                # its data in, and with flagged data out.
                "tau_included": {
                    str(e): float(np.mean([f["recovery_included"][e]["tau"] for f in factions]))
                    for e in ESTIMATORS
                },
                "tau_excluded": {
                    str(e): float(np.mean([f["recovery_excluded"][e]["tau"] for f in factions]))
                    for e in ESTIMATORS
                },
            }
        sizes.append(entry)
    return {
        "settings": settings.to_dict(),
        "seed": seed,
        "repeats": repeats,
        "params": params.to_dict(),
        "quality": dataclasses.asdict(quality_settings),
        "sizes": sizes,
    }


def hash_seed(*parts: int) -> int:
    """A seed derived from several integers, stable across runs and platforms."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])

"""Scoring of the moral graph: from upgrade judgments to the wisest values per context.

This module is the whole analysis, written so that a researcher can check it against the method
(Klingefjord, Lowe, Edelman 2024, "What are human values, and how do we align AI to them?").
It is pure: numpy, scipy and networkx-compatible semantics, no Django, no database, no clock,
no unseeded randomness (the bootstrap takes its seed as an argument). The same judgments and
parameters always give bit-for-bit the same result.

The pipeline, in the order `score` runs it:

1. **Judgments.** Each judgment says: participant *p*, shown the story "someone who lived by
   value A came to live by value B in context C", answered *upgrade*, *not an upgrade* or
   *unsure*. They arrive as columns (`JudgmentArrays`) so that a million of them are counted
   with a few vectorised numpy calls rather than a Python loop.

2. **Counting** (`edge_table`). For every ordered pair A -> B that was shown in context C we
   count its three verdicts, plus ``reverse_upgrade``: the *upgrade* verdicts on the opposite
   story B -> A in the same context. Saying "B -> A is an upgrade" is evidence that A -> B is
   not, so it counts against A -> B. ``total`` is every judgment of the pair, both directions,
   all verdicts.

3. **Evidence statistics.** ``wiser likelihood = (upgrade - reverse_upgrade) / total`` and the
   Shannon entropy, in bits, of the outcome counts (upgrade, not_upgrade, unsure,
   reverse_upgrade). The published implementation also counted *impressions* (times a story
   was merely shown) as an outcome, which inflated the entropy of well-judged edges; we do not.

4. **Filtering.** An edge is kept when it has at least ``min_upgrades`` upgrade verdicts, a
   likelihood of at least ``min_likelihood`` and an entropy of at most ``max_entropy``: enough
   evidence, net agreement that it is an upgrade, and not too much disagreement.

5. **PageRank per context** (`build_context_graphs`, `pagerank`). Kept edges, weighted by
   their likelihood, form a directed graph per context in which rank flows from A to the wiser
   B. Every value judged in the context is a node, so isolated values still get a score. Rank
   at values without outgoing edges is spread uniformly, so each context's scores sum to 1
   (the published implementation leaked it). Power iteration on a scipy sparse matrix costs
   O(edges) per step (the published loop was quadratic in the number of edges).

6. **Winners and support** (`pick_winners`, `support_label`). The top value(s) of each context
   are its alignment target; a label says how far the winner stands above the rest.

7. **Bradley-Terry, the second estimator** (`fit_bradley_terry`). PageRank is the reference
   method, but in simulations with a planted truth (graph/simulation.py, bench/recovery.py)
   it recovers the planted order markedly worse than a paired-comparison model fitted on the
   same judgments, and can miss the wisest value even with 1,000 participants. So every run
   also fits, per context, a Bradley-Terry model: each value has a log-strength theta and,
   shown A and B, people judge B the wiser with probability sigmoid(theta_B - theta_A).
   Decisions, each made to be explained in a paper:

   - *What is a comparison.* On the story A -> B, "upgrade" is B beating A and "not an
     upgrade" is A holding against B. "Not sure" is **no comparison**: it says the judge
     could not tell, not that the two values are equally wise. Counting it as a tie (the
     Rao-Kupper or Davidson extensions) would pull two strengths together on the strength of
     someone's uncertainty, so a confusingly written story would make its values look equal.
     (PageRank keeps the reference's treatment: "not sure" dilutes the likelihood and adds
     to the entropy.) Every judgment counts, whether or not PageRank's filters kept its edge:
     the filters are PageRank's defence against noise, the model weighs noise itself.
   - *A weak prior.* Maximum likelihood diverges when a value won every comparison it was in
     (common with sparse data), so we take the maximum a posteriori estimate under a Gaussian
     prior N(0, ``bt_prior_sd``^2) on each log-strength (1.5 by default: weak, but it keeps a
     value that won its only comparison finite). A value never compared stays at 0.
   - *The fit.* SciPy's trust-region Newton method with the exact gradient and
     Hessian-vector products; the objective is strictly concave, so the optimum is unique,
     independent of the starting point, and deterministic.
   - *Uncertainty.* Standard errors from the Laplace approximation (the inverse Hessian at
     the optimum), for each log-strength relative to the context's mean, since only
     differences of strengths mean anything; ``margin_z`` is the winner's lead over the
     runner-up in standard errors of that difference.
   - *Winners and agreement.* The winners are the values within ``bt_tie_tolerance`` of the
     top strength. A context's ``estimators_agree`` is true when both estimators name the
     same set of winners. When they do not, PageRank's label is capped at "some support":
     a result that depends on the choice of a reasonable estimator is not broadly supported.
   - *Which is primary.* Both are computed and stored in every run; the run's ``estimator``
     (``ScoringResult.primary``) says which winners to show first. The existing result keys
     (``scores``, ``winners``, ``support``...) keep meaning PageRank, the reference, and the
     Bradley-Terry figures sit beside them under ``bradley_terry``.

8. **How sure, and for whom** (`bootstrap_participants`, `group_results`, `bridging_values`).
   Resampling the participants with replacement and scoring again gives each value a
   percentile confidence interval and a *win rate* (how often it wins across samples).
   Scoring each demographic group's judgments alone says whether the overall winner also wins
   within every group, and which group supports it least. A value *bridges* when upgrades
   towards it come from people of different groups.

Everything a run depends on is in `ScoringParams` (serialisable with `ScoringParams.to_dict`)
and `ALGORITHM_VERSION`; a stored run can therefore be reproduced and two runs diffed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import threadpoolctl
from scipy import linalg, optimize, special

__all__ = [
    "ALGORITHM_VERSION",
    "BradleyTerryFit",
    "BradleyTerryNotConvergedError",
    "ContextGraph",
    "ContextResult",
    "EdgeRow",
    "EdgeTable",
    "Estimator",
    "Judgment",
    "JudgmentArrays",
    "PageRankNotConvergedError",
    "ScoringParams",
    "ScoringResult",
    "Support",
    "SupportAssessment",
    "Verdict",
    "bootstrap_participants",
    "bradley_terry_comparisons",
    "bridging_values",
    "build_context_graphs",
    "edge_table",
    "fit_bradley_terry",
    "group_results",
    "keep_mask",
    "outcome_entropy_bits",
    "pagerank",
    "pick_winners",
    "score",
    "score_context",
    "support_label",
    "wiser_likelihood",
    "without_participants",
]

#: Bump whenever a change to this module can change a result, so stored runs say which
#: version of the method produced them.
ALGORITHM_VERSION = "mge-scoring/2"

IntArray = np.ndarray
FloatArray = np.ndarray


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


class Verdict(enum.IntEnum):
    """A participant's answer to one upgrade story; the integer is the code in `JudgmentArrays`."""

    UPGRADE = 0
    NOT_UPGRADE = 1
    UNSURE = 2

    @classmethod
    def parse(cls, verdict: str | int) -> Verdict:
        """Accept a `Verdict`, its code, or its name ("upgrade", "not_upgrade", "unsure").

        Anything else is an error rather than a guess: a misspelt verdict silently counted as
        "unsure" would shift entropies without anyone noticing.
        """
        if isinstance(verdict, str):
            try:
                return cls[verdict.upper()]
            except KeyError:
                raise ValueError(f"unknown verdict {verdict!r}") from None
        return cls(verdict)


@dataclasses.dataclass(frozen=True, slots=True)
class Judgment:
    """One upgrade judgment, row-shaped, for callers that have a few of them (tests, services)."""

    participant_id: int
    context_id: int
    from_value: int
    to_value: int
    verdict: Verdict | str | int


def _as_int_column(name: str, column: Any) -> IntArray:
    """Return *column* as a 1-D int64 array, refusing floats so ids are never silently truncated."""
    array = np.asarray(column)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


@dataclasses.dataclass(frozen=True, eq=False)
class JudgmentArrays:
    """All judgments as parallel int64 columns; row *i* is one judgment.

    ``verdict`` holds `Verdict` codes (0 upgrade, 1 not_upgrade, 2 unsure). Every row counts:
    if a participant may revise a judgment, pass only their current one. A story from a value
    to itself is rejected, because "A became wiser by living by A" is not a hypothesis the
    pipeline ever shows, so such a row can only be a data error.
    """

    participant: IntArray
    context: IntArray
    from_value: IntArray
    to_value: IntArray
    verdict: IntArray

    def __post_init__(self) -> None:
        columns = {f.name: _as_int_column(f.name, getattr(self, f.name)) for f in _fields(self)}
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise ValueError(
                f"columns differ in length: { {k: len(v) for k, v in columns.items()} }"
            )
        for name, column in columns.items():
            object.__setattr__(self, name, column)
        verdict = columns["verdict"]
        if verdict.size and (verdict.min() < 0 or verdict.max() > 2):
            raise ValueError("verdict codes must be 0 (upgrade), 1 (not_upgrade) or 2 (unsure)")
        if np.any(columns["from_value"] == columns["to_value"]):
            raise ValueError(
                "a judgment must compare two different values (from_value == to_value)"
            )

    def __len__(self) -> int:
        return len(self.verdict)

    @classmethod
    def from_judgments(
        cls, judgments: Iterable[Judgment | tuple[int, int, int, int, Verdict | str | int]]
    ) -> JudgmentArrays:
        """Build the columns from `Judgment` objects or 5-tuples in the same field order.

        This is a convenience with a Python loop per judgment; bulk callers should build the
        columns directly (e.g. from a database ``values_list``).
        """
        rows = [
            (j.participant_id, j.context_id, j.from_value, j.to_value, j.verdict)
            if isinstance(j, Judgment)
            else tuple(j)
            for j in judgments
        ]
        if not rows:
            return cls.empty()
        participant, context, from_value, to_value, verdict = zip(*rows, strict=True)
        return cls(
            participant=np.array(participant, dtype=np.int64),
            context=np.array(context, dtype=np.int64),
            from_value=np.array(from_value, dtype=np.int64),
            to_value=np.array(to_value, dtype=np.int64),
            verdict=np.array([Verdict.parse(v) for v in verdict], dtype=np.int64),
        )

    @classmethod
    def empty(cls) -> JudgmentArrays:
        """No judgments at all (every context then scores its explicit values uniformly)."""
        zero = np.zeros(0, dtype=np.int64)
        return cls(zero, zero, zero, zero, zero)

    def select(self, mask: np.ndarray) -> JudgmentArrays:
        """The judgments where the boolean *mask* is true."""
        return JudgmentArrays(*(getattr(self, f.name)[mask] for f in _fields(self)))


def without_participants(
    judgments: JudgmentArrays, participant_ids: Iterable[int]
) -> JudgmentArrays:
    """Drop every judgment by the given participants (e.g. banned or flagged ones).

    The result is exactly what the pipeline would have received had those participants never
    taken part: nothing downstream remembers a dropped row (values they alone judged disappear
    from the context too, unless the caller lists them in ``values_by_context``).
    """
    ids = np.fromiter(participant_ids, dtype=np.int64)
    if ids.size == 0:
        return judgments
    return judgments.select(~np.isin(judgments.participant, ids))


def _fields(obj: Any) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(obj)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScoringParams:
    """Every knob of the method. Stored with each run, so a result can be reproduced.

    Filters (defaults from the published method):

    - ``min_upgrades``: an edge needs at least this many *upgrade* verdicts.
    - ``min_likelihood``: ...and a wiser likelihood at least this high. Must be > 0, because the
      likelihood becomes the edge's PageRank weight and a weight of zero or less is meaningless
      (an edge with no net support for the upgrade must not carry rank).
    - ``max_entropy``: ...and an outcome entropy, in **bits**, at most this high. With four
      outcomes the entropy ranges over [0, 2] bits, so 1.69 bites only on edges whose votes are
      spread over nearly all outcomes.

    PageRank:

    - ``damping``: probability of following an edge rather than jumping to a uniformly random
      value; must be in [0, 1) so that the iteration provably converges.
    - ``tol``: stop when the L1 change of the score vector falls below this. Since scores sum
      to 1, the remaining error is at most ``tol * damping / (1 - damping)`` (about 5.7 * tol).
    - ``max_iter``: give up (raise `PageRankNotConvergedError`) after this many steps. With
      the defaults convergence needs at most about 175 steps (0.85 ** k * 2 < 1e-12), and
      usually far fewer, so 1000 only guards against absurd settings.

    Winners and labels:

    - ``tie_tolerance``: values within this of the top score are all winners. It must exceed
      the solver's error bound (see ``tol``), otherwise which of two equally supported values
      "wins" would be decided by floating-point noise, e.g. by how the values happen to be
      numbered. The default, 1e-10, is about 17 times that bound.
    - ``broad_z``, ``broad_ratio``, ``some_z``, ``some_ratio``: thresholds of `support_label`.

    Bradley-Terry (see `fit_bradley_terry`):

    - ``bt_prior_sd``: standard deviation of the Gaussian prior on each log-strength. 1.5 is
      weak: a priori two values' odds of being judged wiser lie within about e^(+-4.2), i.e.
      1:70, but it keeps a value that won its only comparison from running off to infinity.
    - ``bt_tol``, ``bt_max_iter``: the optimiser stops when the norm of the gradient is below
      ``bt_tol``; a gradient still far above it after ``bt_max_iter`` steps is an error.
    - ``bt_tie_tolerance``: values whose log-strength is within this of the top are all
      winners (the optimiser's own error is far below it).
    - ``bt_exact_se_limit``: up to this many values in a context, standard errors come from
      the full inverse of the Hessian; above it (a dense inverse costs n^3 time and n^2
      memory) from its diagonal only, an approximation (the run says which, in
      ``se_method``). 500 keeps every realistic deliberation exact (the reference deployment
      had 115 canonical values in all) at a few milliseconds per context.
    """

    min_upgrades: int = 2
    min_likelihood: float = 0.33
    max_entropy: float = 1.69
    damping: float = 0.85
    tol: float = 1e-12
    max_iter: int = 1000
    tie_tolerance: float = 1e-10
    broad_z: float = 2.5
    broad_ratio: float = 2.0
    some_z: float = 1.5
    some_ratio: float = 1.5
    bt_prior_sd: float = 1.5
    bt_tol: float = 1e-9
    bt_max_iter: int = 1000
    bt_tie_tolerance: float = 1e-6
    bt_exact_se_limit: int = 500

    def __post_init__(self) -> None:
        if self.min_upgrades < 0:
            raise ValueError("min_upgrades must be >= 0")
        if not 0.0 < self.min_likelihood <= 1.0:
            raise ValueError("min_likelihood must be in (0, 1]: kept edges need a positive weight")
        if self.max_entropy < 0.0:
            raise ValueError("max_entropy must be >= 0 (bits)")
        if not 0.0 <= self.damping < 1.0:
            raise ValueError("damping must be in [0, 1) for the power iteration to converge")
        if self.tol <= 0.0 or self.max_iter < 1:
            raise ValueError("tol must be > 0 and max_iter >= 1")
        if self.tie_tolerance < 0.0:
            raise ValueError("tie_tolerance must be >= 0")
        if not self.bt_prior_sd > 0.0:
            raise ValueError("bt_prior_sd must be > 0: without a prior sparse data explode")
        if self.bt_tol <= 0.0 or self.bt_max_iter < 1 or self.bt_tie_tolerance < 0.0:
            raise ValueError("bt_tol must be > 0, bt_max_iter >= 1, bt_tie_tolerance >= 0")
        if self.bt_exact_se_limit < 0:
            raise ValueError("bt_exact_se_limit must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every parameter (what a stored run records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringParams:
        """Inverse of `to_dict`; unknown keys are an error so a stored run is never misread."""
        return cls(**data)


# --------------------------------------------------------------------------------------------
# Steps 2-4: counting, evidence statistics, filtering
# --------------------------------------------------------------------------------------------


def wiser_likelihood(upgrade: Any, reverse_upgrade: Any, total: Any) -> FloatArray:
    """Net share of the pair's judgments saying A -> B is an upgrade: (up - reverse_up) / total.

    It is in [-1, 1]: 1 when every judgment of the pair, in either direction, endorses A -> B;
    negative when B -> A is endorsed more often. Dividing by *all* judgments of the pair (not
    only the A -> B ones) means "not an upgrade" and "unsure" answers, in either direction,
    dilute the support. Callers only pass rows with total > 0 (a row exists because the story
    was shown at least once).
    """
    upgrade = np.asarray(upgrade, dtype=np.float64)
    return (upgrade - np.asarray(reverse_upgrade, dtype=np.float64)) / np.asarray(
        total, dtype=np.float64
    )


def outcome_entropy_bits(
    upgrade: Any, not_upgrade: Any, unsure: Any, reverse_upgrade: Any
) -> FloatArray:
    """Shannon entropy, in bits, of the four outcome counts of an edge; 0 log 0 counts as 0.

    The outcomes are the *verdicts* that bear on A -> B: upgrade, not an upgrade, unsure, and
    upgrade on the reverse story. Impressions are not an outcome (counting them, as the
    published implementation did, made an edge look disputed merely because it was shown
    often). The base is 2 because the published threshold, 1.69, is in bits: with natural
    logarithms four outcomes reach at most ln 4 = 1.386 nats, and with only three outcomes at
    most log2 3 = 1.585 bits, so in either reading the threshold could never exclude anything.
    In bits with four outcomes the range is [0, 2] and 1.69 removes only edges whose votes are
    spread almost evenly across outcomes.
    """
    counts = np.stack(
        [np.asarray(c, dtype=np.float64) for c in (upgrade, not_upgrade, unsure, reverse_upgrade)],
        axis=-1,
    )
    n = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, n, out=np.zeros_like(counts), where=n > 0)
    log_p = np.log2(p, out=np.zeros_like(p), where=p > 0)
    # "+ 0.0" turns the -0.0 of a single-outcome edge into 0.0, which serialises cleanly.
    return -(p * log_p).sum(axis=-1) + 0.0


def keep_mask(upgrade: Any, likelihood: Any, entropy: Any, params: ScoringParams) -> np.ndarray:
    """Which edges enter the graph: enough upgrades, net support, limited disagreement.

    Thresholds are inclusive (``>=`` / ``<=``), as in the published method. Likelihood and
    entropy are computed from integer counts with correctly rounded operations, so a count
    vector that sits exactly on a threshold is compared exactly, with no tolerance fudge.
    """
    return (
        (np.asarray(upgrade) >= params.min_upgrades)
        & (np.asarray(likelihood) >= params.min_likelihood)
        & (np.asarray(entropy) <= params.max_entropy)
    )


class EdgeRow(NamedTuple):
    """One row of an `EdgeTable`, for callers that iterate rather than use columns."""

    context: int
    from_value: int
    to_value: int
    upgrade: int
    not_upgrade: int
    unsure: int
    reverse_upgrade: int
    total: int
    likelihood: float
    entropy: float
    kept: bool


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeTable:
    """Every ordered pair shown at least once, with its counts, statistics and kept flag.

    Columns are numpy arrays of equal length, sorted by (context, from_value, to_value), so
    a context's rows are one contiguous slice and two runs can be diffed row by row. A
    direction never shown gets no row: if only B -> A was shown there is no A -> B row,
    because it could never be kept (it has no upgrade verdicts) and the evidence it would
    carry is already in the B -> A row (its upgrades are A -> B's ``reverse_upgrade``, and
    ``total`` is the same for both directions). Use `to_columns` to serialise (JSON-ready
    lists) and `rows` to iterate.
    """

    context: IntArray
    from_value: IntArray
    to_value: IntArray
    upgrade: IntArray
    not_upgrade: IntArray
    unsure: IntArray
    reverse_upgrade: IntArray
    total: IntArray
    likelihood: FloatArray
    entropy: FloatArray
    kept: np.ndarray

    def __len__(self) -> int:
        return len(self.context)

    @property
    def n_kept(self) -> int:
        return int(np.count_nonzero(self.kept))

    def to_columns(self) -> dict[str, list[Any]]:
        """Column name -> list of Python scalars; cheap (``tolist``) and JSON-serialisable."""
        return {f.name: getattr(self, f.name).tolist() for f in _fields(self)}

    def rows(self) -> Iterator[EdgeRow]:
        """Iterate rows as `EdgeRow` tuples of Python scalars."""
        return map(EdgeRow._make, zip(*self.to_columns().values(), strict=True))

    def select(self, index: np.ndarray | slice) -> EdgeTable:
        """The rows picked by a boolean mask, index array or slice."""
        return EdgeTable(*(getattr(self, f.name)[index] for f in _fields(self)))

    def for_context(self, context_id: int) -> EdgeTable:
        """The rows of one context (a binary search, since rows are sorted by context)."""
        start, stop = np.searchsorted(self.context, [context_id, context_id + 1])
        return self.select(slice(int(start), int(stop)))


def edge_table(judgments: JudgmentArrays, params: ScoringParams) -> EdgeTable:
    """Steps 2-4: count every ordered pair per context, compute its statistics, filter.

    How the counting stays vectorised: each judgment is filed under its *unordered* pair
    (context, lower id, higher id) plus a direction bit (was the story shown from the lower
    id to the higher, or back). One lexicographic sort brings each unordered pair's judgments
    together, and one ``bincount`` over (pair, direction, verdict) yields six counts per pair:
    the three verdicts in each direction. The two ordered rows of a pair then read them off
    crosswise, so the upgrades of one direction become the ``reverse_upgrade`` of the other.
    Integer counting is independent of the input order, and every output is sorted by ids,
    so shuffling the judgments cannot change a single bit of the result.
    """
    if len(judgments) == 0:
        empty_int = np.zeros(0, dtype=np.int64)
        empty_float = np.zeros(0, dtype=np.float64)
        return EdgeTable(*([empty_int] * 8), empty_float, empty_float, np.zeros(0, dtype=bool))

    low = np.minimum(judgments.from_value, judgments.to_value)
    high = np.maximum(judgments.from_value, judgments.to_value)
    backwards = judgments.from_value > judgments.to_value  # story shown high -> low

    order = np.lexsort((high, low, judgments.context))
    context, low, high = judgments.context[order], low[order], high[order]
    new_pair = np.empty(len(order), dtype=bool)
    new_pair[0] = True
    new_pair[1:] = (context[1:] != context[:-1]) | (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    pair_of_row = np.cumsum(new_pair) - 1
    n_pairs = int(pair_of_row[-1]) + 1

    # Six counts per unordered pair: columns 0-2 are the verdicts on low -> high,
    # columns 3-5 the verdicts on high -> low (each block ordered upgrade, not, unsure).
    outcome = backwards[order] * 3 + judgments.verdict[order]
    counts = np.bincount(pair_of_row * 6 + outcome, minlength=6 * n_pairs).reshape(n_pairs, 6)
    first = np.flatnonzero(new_pair)
    pair_context, pair_low, pair_high = context[first], low[first], high[first]
    pair_total = counts.sum(axis=1)

    forward, backward = counts[:, 0:3], counts[:, 3:6]
    shown_forward = forward.sum(axis=1) > 0
    shown_backward = backward.sum(axis=1) > 0

    def rows(
        shown: np.ndarray, source: IntArray, target: IntArray, own: np.ndarray, other: np.ndarray
    ) -> tuple[IntArray, ...]:
        """The ordered rows source -> target of the pairs where that direction was shown."""
        return (
            pair_context[shown],
            source[shown],
            target[shown],
            own[shown, 0],
            own[shown, 1],
            own[shown, 2],
            other[shown, 0],  # upgrades on the opposite story: evidence against this one
            pair_total[shown],
        )

    columns = [
        np.concatenate(parts)
        for parts in zip(
            rows(shown_forward, pair_low, pair_high, forward, backward),
            rows(shown_backward, pair_high, pair_low, backward, forward),
            strict=True,
        )
    ]
    row_context, row_from, row_to = columns[0], columns[1], columns[2]
    columns = [c[np.lexsort((row_to, row_from, row_context))] for c in columns]
    row_context, row_from, row_to, upgrade, not_upgrade, unsure, reverse_upgrade, total = columns

    likelihood = wiser_likelihood(upgrade, reverse_upgrade, total)
    entropy = outcome_entropy_bits(upgrade, not_upgrade, unsure, reverse_upgrade)
    kept = keep_mask(upgrade, likelihood, entropy, params)
    return EdgeTable(
        row_context,
        row_from,
        row_to,
        upgrade,
        not_upgrade,
        unsure,
        reverse_upgrade,
        total,
        likelihood,
        entropy,
        kept,
    )


# --------------------------------------------------------------------------------------------
# Step 5: PageRank per context
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ContextGraph:
    """The weighted graph of one context, ready for power iteration.

    ``values`` are the node ids, ascending; node *i* of the matrix is ``values[i]``.
    ``transition[b, a]`` is the share of a's rank that flows to b: the weight of the kept edge
    a -> b divided by a's total outgoing weight. Every column of a value with outgoing edges
    therefore sums to 1; the columns of ``dangling`` values (no kept outgoing edge) are empty,
    and `pagerank` spreads their rank uniformly instead.
    """

    context_id: int
    values: IntArray
    transition: sp.csr_array
    dangling: np.ndarray

    @property
    def n_edges(self) -> int:
        return int(self.transition.nnz)


def _context_graph(
    context_id: int, edges: EdgeTable, explicit_values: IntArray | None
) -> ContextGraph:
    """Build one context's graph from its slice of the edge table (see `build_context_graphs`)."""
    node_parts = [edges.from_value, edges.to_value]
    if explicit_values is not None:
        node_parts.append(explicit_values)
    values = np.unique(np.concatenate(node_parts))
    n = len(values)

    kept = edges.kept
    source = np.searchsorted(values, edges.from_value[kept])
    target = np.searchsorted(values, edges.to_value[kept])
    weight = edges.likelihood[kept]
    out_weight = np.bincount(source, weights=weight, minlength=n)
    # Rows of the edge table are sorted by (from, to), so the matrix is assembled in one
    # canonical order and its sparse dot products always add terms in the same order.
    transition = sp.csr_array((weight / out_weight[source], (target, source)), shape=(n, n))
    return ContextGraph(context_id, values, transition, out_weight == 0)


def build_context_graphs(
    edges: EdgeTable, *, values_by_context: Mapping[int, Iterable[int]] | None = None
) -> list[ContextGraph]:
    """One `ContextGraph` per context, in ascending context id.

    The nodes of a context are every value that appears in any of its judgments (as the story's
    origin or destination), whether or not any of its edges survived the filters, plus the
    values the caller lists for that context in *values_by_context*. Listing values lets a
    service score values that nobody has judged yet (they then share the teleport mass); a
    context that appears only in *values_by_context* gets a graph without edges. The loop is
    per context, and each context touches only its own contiguous slice of the edge table.
    """
    explicit = {
        int(c): np.unique(np.fromiter(vs, dtype=np.int64))
        for c, vs in (values_by_context or {}).items()
    }
    judged_contexts, starts = np.unique(edges.context, return_index=True)
    stops = np.searchsorted(edges.context, judged_contexts, side="right")
    slices = {
        int(c): slice(int(a), int(b))
        for c, a, b in zip(judged_contexts, starts, stops, strict=True)
    }
    graphs = []
    for context_id in sorted(slices.keys() | explicit.keys()):
        context_edges = edges.select(slices.get(context_id, slice(0, 0)))
        graphs.append(_context_graph(context_id, context_edges, explicit.get(context_id)))
    return graphs


class PageRankNotConvergedError(RuntimeError):
    """The power iteration hit ``max_iter`` before its change fell below ``tol``."""


def pagerank(
    graph: ContextGraph, *, damping: float, tol: float, max_iter: int
) -> tuple[FloatArray, int]:
    """Weighted PageRank of one context by power iteration; returns (scores, iterations).

    One step is the random surfer's move: with probability ``damping`` follow an outgoing kept
    edge of the current value, chosen in proportion to its weight; from a dangling value (no
    kept outgoing edge) jump to any value uniformly; with probability ``1 - damping`` jump to
    any value uniformly. In matrix form, with M = ``graph.transition`` and n values::

        x' = damping * (M @ x + sum(x[dangling]) / n) + (1 - damping) / n

    Redistributing the dangling rank keeps the total at exactly 1 in exact arithmetic; this
    is where the published implementation lost 41-74% of the rank. It is the same definition
    as ``networkx.pagerank`` with uniform personalisation and dangling distribution, so its
    results can be checked against networkx.

    We start from the uniform vector and stop when the L1 change of a step is below ``tol``.
    Because the step is a contraction by ``damping`` in L1, the distance to the exact scores
    is then below ``tol * damping / (1 - damping)``. (networkx instead compares against
    ``n * tol``; an absolute bound is easier to reason about when contexts differ in size.)
    A final division by the sum removes the floating-point drift accumulated over the steps.
    Each step costs one sparse matrix-vector product plus O(n), i.e. O(edges + values).
    """
    n = len(graph.values)
    if n == 0:
        return np.zeros(0), 0
    transition = graph.transition
    dangling = np.flatnonzero(graph.dangling)
    teleport = (1.0 - damping) / n
    x = np.full(n, 1.0 / n)
    for iteration in range(1, max_iter + 1):
        x_next = transition @ x
        x_next *= damping
        x_next += damping * x[dangling].sum() / n + teleport
        change = np.abs(x_next - x).sum()
        x = x_next
        if change < tol:
            return x / x.sum(), iteration
    raise PageRankNotConvergedError(
        f"context {graph.context_id}: no convergence to tol={tol} in {max_iter} iterations"
    )


# --------------------------------------------------------------------------------------------
# Step 5b: Bradley-Terry per context (the second estimator)
# --------------------------------------------------------------------------------------------


class BradleyTerryNotConvergedError(RuntimeError):
    """The optimiser stopped before the gradient of the log-posterior fell below ``bt_tol``."""


@dataclasses.dataclass(frozen=True, eq=False)
class BradleyTerryFit:
    """The Bradley-Terry estimate of one context, aligned with the context's ``values``.

    ``strength`` holds log-strengths: the model says that, shown A and B, people judge B the
    wiser with probability 1 / (1 + exp(strength[A] - strength[B])). ``se`` is the standard
    error of each log-strength relative to the mean of the context's log-strengths (Laplace
    approximation; ``se_method`` says "exact" for the full inverse Hessian or "diagonal" for
    the cheaper approximation used in very large contexts: 1 / sqrt of the Hessian's
    diagonal, the uncertainty of a value were all the others known).
    ``margin_z`` is (top - runner-up) / SE of that difference: about how many standard errors
    separate the winner from the next value (None with fewer than two values or a tie).
    """

    context_id: int
    values: IntArray
    strength: FloatArray
    se: FloatArray
    winners: tuple[int, ...]
    n_comparisons: int
    iterations: int
    se_method: str
    margin_z: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength.tolist(),
            "se": self.se.tolist(),
            "winners": list(self.winners),
            "n_comparisons": self.n_comparisons,
            "iterations": self.iterations,
            "se_method": self.se_method,
            "margin_z": self.margin_z,
        }


def bradley_terry_comparisons(
    edges: EdgeTable, values: IntArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """(winner index, loser index, count) of every comparison in one context's edge rows.

    On the story A -> B, "upgrade" is B beating A and "not an upgrade" is A holding against
    B. "Not sure" is no comparison at all (see the module docstring). Indices are positions in
    *values*, which must contain every value of the rows. Every row counts, kept or not: the
    filters are PageRank's defence against noise, while Bradley-Terry weighs noise itself.
    """
    source = np.searchsorted(values, edges.from_value)
    target = np.searchsorted(values, edges.to_value)
    winner = np.concatenate([target, source])
    loser = np.concatenate([source, target])
    count = np.concatenate([edges.upgrade, edges.not_upgrade]).astype(np.float64)
    some = count > 0
    return winner[some], loser[some], count[some]


def _bt_objective(
    theta: FloatArray, winner: IntArray, loser: IntArray, count: FloatArray, precision: float
) -> tuple[float, FloatArray]:
    """Negative log-posterior of the log-strengths and its gradient."""
    margin = theta[winner] - theta[loser]
    # -log sigmoid(m) = log(1 + exp(-m)), computed without overflow.
    value = float(count @ np.logaddexp(0.0, -margin)) + 0.5 * precision * float(theta @ theta)
    pull = count * special.expit(-margin)  # d(-log sigmoid(m))/dm = -(1 - sigmoid(m))
    n = len(theta)
    gradient = (
        np.bincount(loser, weights=pull, minlength=n)
        - np.bincount(winner, weights=pull, minlength=n)
        + precision * theta
    )
    return value, gradient


def _bt_hessp(
    theta: FloatArray,
    vector: FloatArray,
    winner: IntArray,
    loser: IntArray,
    count: FloatArray,
    precision: float,
) -> FloatArray:
    """Hessian of the negative log-posterior times *vector*, without forming the matrix."""
    p = special.expit(theta[winner] - theta[loser])
    flow = count * p * (1.0 - p) * (vector[winner] - vector[loser])
    n = len(theta)
    return (
        np.bincount(winner, weights=flow, minlength=n)
        - np.bincount(loser, weights=flow, minlength=n)
        + precision * vector
    )


def _bt_hessian(
    theta: FloatArray, winner: IntArray, loser: IntArray, count: FloatArray, precision: float
) -> sp.csr_array:
    """Hessian of the negative log-posterior: a weighted graph Laplacian plus the prior."""
    n = len(theta)
    p = special.expit(theta[winner] - theta[loser])
    w = count * p * (1.0 - p)
    rows = np.concatenate([winner, loser, winner, loser, np.arange(n)])
    cols = np.concatenate([winner, loser, loser, winner, np.arange(n)])
    data = np.concatenate([w, w, -w, -w, np.full(n, precision)])
    return sp.csr_array((data, (rows, cols)), shape=(n, n))


def fit_bradley_terry(
    context_id: int, values: IntArray, edges: EdgeTable, params: ScoringParams
) -> BradleyTerryFit:
    """Maximum a posteriori Bradley-Terry log-strengths of one context, with standard errors.

    Maximises sum over comparisons of log sigmoid(theta[winner] - theta[loser]) minus
    sum(theta^2) / (2 * bt_prior_sd^2) with SciPy's trust-region Newton method ("trust-ncg")
    from theta = 0, using the exact gradient and Hessian-vector products (each costs one pass
    over the comparisons; a fit takes some tens of them).
    The objective is strictly concave, so the optimum is unique and does not depend on the
    starting point; it is also deterministic. Standard errors are the square roots of the
    diagonal of the inverse Hessian at the optimum (the Laplace approximation of the
    posterior), taken relative to the context's mean. A value never compared keeps the
    prior's strength, 0, and the largest uncertainty.

    It runs with a single BLAS thread: the fit's vectors and matrices are small, so threads
    only add synchronisation, and on a busy machine OpenBLAS's spinning threads made it 10 to
    50 times slower.
    """
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return _fit_bradley_terry(context_id, values, edges, params)


def _fit_bradley_terry(
    context_id: int, values: IntArray, edges: EdgeTable, params: ScoringParams
) -> BradleyTerryFit:
    """The fit itself (see `fit_bradley_terry`)."""
    n = len(values)
    winner, loser, count = bradley_terry_comparisons(edges, values)
    n_comparisons = int(count.sum())
    precision = 1.0 / params.bt_prior_sd**2
    theta = np.zeros(n)
    iterations = 0
    if n and n_comparisons:
        fitted = optimize.minimize(
            _bt_objective,
            theta,
            args=(winner, loser, count, precision),
            jac=True,
            hessp=_bt_hessp,
            method="trust-ncg",
            options={"gtol": params.bt_tol, "maxiter": params.bt_max_iter},
        )
        theta, iterations = fitted.x, int(fitted.nit)
        # The optimiser may stop at the limit of floating-point progress with a tiny gradient
        # left ("bad approximation"); judge convergence by the gradient itself, allowing
        # for rounding that grows with the amount of data.
        _, gradient = _bt_objective(theta, winner, loser, count, precision)
        if np.linalg.norm(gradient) > 1e3 * params.bt_tol * max(1.0, n_comparisons):
            raise BradleyTerryNotConvergedError(
                f"context {context_id}: Bradley-Terry did not converge ({fitted.message})"
            )
    hessian = _bt_hessian(theta, winner, loser, count, precision)
    margin_pair: tuple[int, int] | None = None
    if n >= 2:
        second, first = np.argsort(theta, kind="stable")[-2:]
        if theta[first] - theta[second] > params.bt_tie_tolerance:
            margin_pair = (int(first), int(second))
    if n <= params.bt_exact_se_limit:
        dense = hessian.toarray()
        covariance = linalg.cho_solve(linalg.cho_factor(dense), np.eye(n)) if n else dense
        # Strengths only mean something relative to each other (adding a constant to all of
        # them changes no prediction), so report the uncertainty of each one relative to the
        # context's mean: the covariance of (I - J/n) theta.
        row_mean = covariance.mean(axis=1) if n else covariance[:, :0].sum(axis=1)
        centred = np.diag(covariance) - 2 * row_mean + (row_mean.mean() if n else 0.0)
        se = np.sqrt(np.maximum(centred, 0.0))
        se_method = "exact"
        if margin_pair:
            i, j = margin_pair
            margin_var = covariance[i, i] + covariance[j, j] - 2 * covariance[i, j]
    else:
        se = 1.0 / np.sqrt(hessian.diagonal())
        se_method = "diagonal"
        if margin_pair:
            i, j = margin_pair
            margin_var = se[i] ** 2 + se[j] ** 2
    margin_z = None
    if margin_pair:
        i, j = margin_pair
        margin_z = float((theta[i] - theta[j]) / np.sqrt(margin_var))
    return BradleyTerryFit(
        context_id=context_id,
        values=values,
        strength=theta,
        se=se,
        winners=pick_winners(values, theta, tie_tolerance=params.bt_tie_tolerance),
        n_comparisons=n_comparisons,
        iterations=iterations,
        se_method=se_method,
        margin_z=margin_z,
    )


# --------------------------------------------------------------------------------------------
# Step 6: winners and support
# --------------------------------------------------------------------------------------------


class Support(enum.StrEnum):
    """How clearly a context's winner stands above the other values (labels of the reference)."""

    BROAD = "broadly supported"
    SOME = "some support"
    CONTESTED = "contested"


class SupportAssessment(NamedTuple):
    """The label with the two figures it was decided on (None where they are undefined)."""

    label: Support
    z_score: float | None
    ratio: float | None


def pick_winners(values: IntArray, scores: FloatArray, *, tie_tolerance: float) -> tuple[int, ...]:
    """Every value whose score is within ``tie_tolerance`` of the top score, ascending by id.

    Several winners mean the graph does not separate them; reporting all of them, rather than
    whichever comes first, keeps the result independent of how the values are numbered.
    """
    if len(scores) == 0:
        return ()
    top = scores.max()
    return tuple(values[scores >= top - tie_tolerance].tolist())


def support_label(scores: FloatArray, params: ScoringParams) -> SupportAssessment:
    """Label a context by how far its winner stands above the rest (the reference rule).

    With w the top score, r the runner-up (the second-highest score, counted with multiplicity)
    and z = (w - mean) / std over all the context's scores (population standard deviation):

    - "broadly supported" if z > 2.5 and w / r > 2;
    - "some support" if z > 1.5 or w / r > 1.5;
    - "contested" otherwise.

    Decisions on the edge cases, all erring towards *not* claiming support:

    - Tied winners: the runner-up is the other tied winner, so the ratio is about 1 and the
      label can be at most "some support" (when the tied group stands out by z). A tie has no
      margin, so it can never be "broadly supported".
    - Fewer than two values, or all scores within ``tie_tolerance`` of each other (which
      includes a context without kept edges, and a cycle of equal weights): nothing stands
      above anything, z and the ratio are undefined (None, never noise divided by noise) and
      the label is "contested". This also covers std = 0.

    Worth knowing when reading labels: with the population std, z can never exceed
    sqrt(n - 1) for n values, so "broadly supported" needs at least 8 values in the context,
    and with exactly 2 values z is always 1, so only the ratio decides.
    """
    if len(scores) < 2 or scores.max() - scores.min() <= params.tie_tolerance:
        return SupportAssessment(Support.CONTESTED, None, None)
    winner, runner_up = np.sort(scores)[::-1][:2]
    z = float((winner - scores.mean()) / scores.std())
    ratio = float(winner / runner_up)  # runner_up > 0: PageRank gives every value >= teleport
    if z > params.broad_z and ratio > params.broad_ratio:
        label = Support.BROAD
    elif z > params.some_z or ratio > params.some_ratio:
        label = Support.SOME
    else:
        label = Support.CONTESTED
    return SupportAssessment(label, z, ratio)


# --------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------


class Estimator(enum.StrEnum):
    """Which estimator's winners a run puts first (both are always computed and stored)."""

    PAGERANK = "pagerank"
    BRADLEY_TERRY = "bradley_terry"


@dataclasses.dataclass(frozen=True, eq=False)
class ContextResult:
    """The scores and alignment target of one context.

    ``values``/``score_array`` are aligned numpy arrays (values ascending) for vectorised use;
    ``scores`` is the same as a dict. ``iterations`` is how many power-iteration steps ran.
    ``winners``, ``support``, ``z_score`` and ``ratio`` are PageRank's (the reference
    method); ``bradley_terry`` is the second estimator on the same values, and
    ``estimators_agree`` says whether both picked the same winners. When they do not,
    ``support`` is at most "some support", whatever PageRank's margin.
    """

    context_id: int
    values: IntArray
    score_array: FloatArray
    scores: dict[int, float]
    winners: tuple[int, ...]
    support: Support
    z_score: float | None
    ratio: float | None
    n_edges: int
    iterations: int
    bradley_terry: BradleyTerryFit | None = None
    estimators_agree: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (scores as two aligned lists, since JSON keys must be strings)."""
        data = {
            "context_id": self.context_id,
            "values": self.values.tolist(),
            "scores": self.score_array.tolist(),
            "winners": list(self.winners),
            "support": self.support.value,
            "z_score": self.z_score,
            "ratio": self.ratio,
            "n_edges": self.n_edges,
            "iterations": self.iterations,
        }
        if self.bradley_terry is not None:
            data["bradley_terry"] = self.bradley_terry.to_dict()
            data["estimators_agree"] = self.estimators_agree
        return data

    def winners_by(self, estimator: Estimator | str) -> tuple[int, ...]:
        """The winners of the given estimator."""
        if Estimator(estimator) == Estimator.BRADLEY_TERRY and self.bradley_terry is not None:
            return self.bradley_terry.winners
        return self.winners


@dataclasses.dataclass(frozen=True, eq=False)
class ScoringResult:
    """Everything one scoring run produced, with the parameters and version that produced it.

    ``primary`` names the estimator the run puts first; both are in every context.
    """

    params: ScoringParams
    contexts: dict[int, ContextResult]
    edges: EdgeTable
    n_judgments: int
    algorithm_version: str = ALGORITHM_VERSION
    primary: Estimator = Estimator.PAGERANK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole run (edges as columns; see `EdgeTable.to_columns`)."""
        return {
            "algorithm_version": self.algorithm_version,
            "primary": self.primary.value,
            "params": self.params.to_dict(),
            "n_judgments": self.n_judgments,
            "contexts": [c.to_dict() for c in self.contexts.values()],
            "edges": self.edges.to_columns(),
        }


def score_context(
    graph: ContextGraph, params: ScoringParams, edges: EdgeTable | None = None
) -> ContextResult:
    """Steps 5-6 for one context: PageRank, Bradley-Terry, winners, support label.

    *edges* are the context's rows of the edge table, which Bradley-Terry is fitted on;
    without them only PageRank runs (``bradley_terry`` is then None).
    """
    scores, iterations = pagerank(
        graph, damping=params.damping, tol=params.tol, max_iter=params.max_iter
    )
    assessment = support_label(scores, params)
    winners = pick_winners(graph.values, scores, tie_tolerance=params.tie_tolerance)
    fit = agree = None
    label = assessment.label
    if edges is not None:
        fit = fit_bradley_terry(graph.context_id, graph.values, edges, params)
        agree = fit.winners == winners
        if not agree and label == Support.BROAD:
            # Two reasonable estimators disagree on the winner: that is not broad support.
            label = Support.SOME
    return ContextResult(
        context_id=graph.context_id,
        values=graph.values,
        score_array=scores,
        scores=dict(zip(graph.values.tolist(), scores.tolist(), strict=True)),
        winners=winners,
        support=label,
        z_score=assessment.z_score,
        ratio=assessment.ratio,
        n_edges=graph.n_edges,
        iterations=iterations,
        bradley_terry=fit,
        estimators_agree=agree,
    )


def score(
    judgments: JudgmentArrays | Iterable[Judgment | tuple[int, int, int, int, Any]],
    params: ScoringParams | None = None,
    *,
    values_by_context: Mapping[int, Iterable[int]] | None = None,
    primary: Estimator | str = Estimator.PAGERANK,
) -> ScoringResult:
    """Run the whole method: count, filter, PageRank every context, pick winners and labels.

    *judgments* should already exclude anything that must not count (banned participants:
    see `without_participants`; judgments outside the deliberation or question being
    scored). *values_by_context* optionally adds values to a context's nodes, see
    `build_context_graphs`. Contexts are scored independently: a context's result depends
    only on its own judgments and listed values.
    """
    if not isinstance(judgments, JudgmentArrays):
        judgments = JudgmentArrays.from_judgments(judgments)
    params = params or ScoringParams()
    edges = edge_table(judgments, params)
    graphs = build_context_graphs(edges, values_by_context=values_by_context)
    contexts = {
        graph.context_id: score_context(graph, params, edges.for_context(graph.context_id))
        for graph in graphs
    }
    return ScoringResult(
        params=params,
        contexts=contexts,
        edges=edges,
        n_judgments=len(judgments),
        primary=Estimator(primary),
    )


# --------------------------------------------------------------------------------------------
# Step 7: uncertainty (bootstrap over participants) and groups
# --------------------------------------------------------------------------------------------


def _pagerank_contexts(
    judgments: JudgmentArrays,
    params: ScoringParams,
    values_by_context: Mapping[int, Iterable[int]] | None,
) -> dict[int, ContextResult]:
    """Steps 2-6 with PageRank alone (no Bradley-Terry fit): what the bootstrap and the group
    results re-run many times. Bradley-Terry carries its own standard errors."""
    edges = edge_table(judgments, params)
    graphs = build_context_graphs(edges, values_by_context=values_by_context)
    return {graph.context_id: score_context(graph, params) for graph in graphs}


def _competition_rank(scores: FloatArray, index: int, tie_tolerance: float) -> int:
    """1 + how many values score clearly above value *index* (ties share the better rank)."""
    return 1 + int(np.count_nonzero(scores > scores[index] + tie_tolerance))


def bootstrap_participants(
    judgments: JudgmentArrays,
    params: ScoringParams,
    *,
    values_by_context: Mapping[int, Iterable[int]] | None = None,
    reference: ScoringResult,
    samples: int,
    seed: int,
    level: float = 0.95,
) -> dict[int, dict[str, Any]]:
    """Percentile confidence intervals and win rates per value, by resampling participants.

    A sample draws as many participants as took part, uniformly *with replacement* (so some
    come twice and some not at all), takes every judgment of each drawn participant as many
    times as they were drawn, and scores the result with the same parameters and listed
    values. Resampling people rather than single judgments respects that one person's
    judgments are not independent of each other.

    For each context of *reference* (the run on all judgments) and each of its values:

    - ``ci_low``/``ci_high``: the (1 - level) / 2 and (1 + level) / 2 percentiles of the value's
      score over the samples (numpy's default linear interpolation). A value that a sample lost
      altogether (judged only by people not drawn, and not listed in *values_by_context*)
      scores 0 in that sample.
    - ``win_rate``: the share of samples in which the value is a winner; k tied winners get
      1/k each, so a context's win rates sum to 1.

    Draws come from ``numpy.random.default_rng(seed)`` over the participants sorted by id, so
    the same judgments, parameters, samples and seed give bit-for-bit the same figures. The
    scores resampled are PageRank's (the reference method's); winners are PageRank's too.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    people, row_person = np.unique(judgments.participant, return_inverse=True)
    rng = np.random.default_rng(seed)
    contexts = reference.contexts
    draws = {c: np.zeros((samples, len(r.values))) for c, r in contexts.items()}
    wins = {c: np.zeros(len(r.values)) for c, r in contexts.items()}
    for sample in range(samples):
        if len(people):
            drawn = np.bincount(
                rng.integers(0, len(people), size=len(people)), minlength=len(people)
            )
            rows = np.repeat(np.arange(len(judgments)), drawn[row_person])
            sampled = judgments.select(rows)
        else:
            sampled = judgments
        result = _pagerank_contexts(sampled, params, values_by_context)
        for context_id, ref in contexts.items():
            got = result.get(context_id)
            if got is None:
                continue
            position = np.searchsorted(got.values, ref.values)
            present = (position < len(got.values)) & (
                got.values[np.minimum(position, len(got.values) - 1)] == ref.values
            )
            draws[context_id][sample, present] = got.score_array[position[present]]
            winners = np.isin(ref.values, np.asarray(got.winners, dtype=np.int64))
            if winners.any():
                wins[context_id][winners] += 1.0 / np.count_nonzero(winners)
    low, high = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for context_id, scores in draws.items():
        ci_low, ci_high = np.percentile(scores, [low, high], axis=0)
        out[context_id] = {
            "samples": samples,
            "seed": seed,
            "level": level,
            "ci_low": ci_low.tolist(),
            "ci_high": ci_high.tolist(),
            "win_rate": (wins[context_id] / samples).tolist(),
        }
    return out


def group_results(
    judgments: JudgmentArrays,
    params: ScoringParams,
    *,
    groups: Mapping[int, str],
    reference: ScoringResult,
    values_by_context: Mapping[int, Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Score each group's judgments alone and compare with the overall winner, per context.

    *groups* maps a participant id to their group (e.g. their answer to "political
    affiliation"); participants without a group are left out of every group but still count
    in *reference*. For each context of *reference* and each group that judged in it:

    - ``winners``: the group's own winners; ``winner_wins``: whether one of the overall
      winners is among them;
    - ``winner_score`` and ``winner_rank``: the best score and rank (1 = top, ties share the
      better rank) that an overall winner gets from this group.

    ``worst`` names the group that supports the overall winner least: the highest rank, then
    the lowest score, then the group name. Reporting it beside the overall figure shows whether
    the target holds for everyone or only on average. A group that did not judge in a context
    is listed with ``judgments`` 0 and no figures: it gives no evidence either way. Scores and
    winners are PageRank's (the reference method's), in the groups as overall.
    """
    labels = sorted(set(groups.values()))
    person_group = {int(p): g for p, g in groups.items()}
    row_group = np.array(
        [person_group.get(int(p), "") for p in judgments.participant.tolist()], dtype=object
    )
    by_group = {}
    for label in labels:
        mask = row_group == label
        subset = judgments.select(mask)
        by_group[label] = (subset, _pagerank_contexts(subset, params, values_by_context))
    contexts = []
    for context_id, ref in reference.contexts.items():
        overall_winners = np.asarray(ref.winners, dtype=np.int64)
        rows = []
        for label in labels:
            subset, result = by_group[label]
            in_context = subset.context == context_id
            n_judgments = int(np.count_nonzero(in_context))
            row: dict[str, Any] = {
                "group": label,
                "participants": len(np.unique(subset.participant[in_context])),
                "judgments": n_judgments,
            }
            got = result.get(context_id)
            if n_judgments and got is not None and len(overall_winners):
                where = np.flatnonzero(np.isin(got.values, overall_winners))
                ranks = [_competition_rank(got.score_array, i, params.tie_tolerance) for i in where]
                row.update(
                    winners=list(got.winners),
                    winner_wins=bool(np.isin(overall_winners, got.winners).any()),
                    winner_score=float(got.score_array[where].max()) if len(where) else 0.0,
                    winner_rank=min(ranks) if ranks else len(got.values) + 1,
                )
            rows.append(row)
        judged = [r for r in rows if "winner_rank" in r]
        worst = max(
            judged, key=lambda r: (r["winner_rank"], -r["winner_score"], r["group"]), default=None
        )
        contexts.append(
            {
                "context_id": context_id,
                "overall_winners": overall_winners.tolist(),
                "overall_score": float(ref.score_array.max()) if len(ref.values) else None,
                "groups": rows,
                "worst": worst["group"] if worst else None,
                "all_groups_agree": bool(judged) and all(r["winner_wins"] for r in judged),
            }
        )
    return {
        "groups": [
            {
                "group": label,
                "participants": len(np.unique(by_group[label][0].participant)),
                "judgments": len(by_group[label][0]),
            }
            for label in labels
        ],
        "contexts": contexts,
    }


def bridging_values(
    judgments: JudgmentArrays, edges: EdgeTable, *, groups: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Which values are raised by people of different groups, per context.

    Definition: in context C, the *support* of value B is the set of *upgrade* verdicts on
    stories A -> B whose edge A -> B was kept in the graph (so it actually carries rank to B).
    B is **bridging** in C when that support comes from at least two different groups, each
    with at least one upgrade verdict. People without a group are not counted. The counts per
    group are returned too, so a reader can judge how balanced the support is.

    Returns one entry per (context, value) with any such support, sorted by context and value:
    ``{"context_id", "value", "by_group": {group: upgrades}, "bridging": bool}``.
    """
    if len(judgments) == 0 or len(edges) == 0:
        return []
    kept = edges.select(edges.kept)
    kept_keys = set(
        zip(kept.context.tolist(), kept.from_value.tolist(), kept.to_value.tolist(), strict=True)
    )
    support: dict[tuple[int, int], dict[str, int]] = {}
    upgrade = judgments.verdict == Verdict.UPGRADE
    for person, context_id, a, b in zip(
        judgments.participant[upgrade].tolist(),
        judgments.context[upgrade].tolist(),
        judgments.from_value[upgrade].tolist(),
        judgments.to_value[upgrade].tolist(),
        strict=True,
    ):
        group = groups.get(person)
        if group is None or (context_id, a, b) not in kept_keys:
            continue
        counts = support.setdefault((context_id, b), {})
        counts[group] = counts.get(group, 0) + 1
    return [
        {
            "context_id": context_id,
            "value": value,
            "by_group": dict(sorted(counts.items())),
            "bridging": len(counts) >= 2,
        }
        for (context_id, value), counts in sorted(support.items())
    ]

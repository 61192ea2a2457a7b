"""Vote-quality rules: pure functions that point at judgments or participants worth a
moderator's look. They flag and never delete; the pipeline records their findings as
`ModerationFlag` rows (source "vote_quality"), and a scoring run can include or exclude the
flagged data, so a researcher can report the result both ways.

No Django here (like graph/algorithms.py): the rules take columns and return ids, so they are
tested on constructed cases, run inside the pipeline, and run inside pilot simulations alike.

The rules, each with the reason code it writes:

- ``too_fast`` (a judgment): answered sooner after the story was shown than reading it
  allows (``min_seconds``). A revision counts from when the story was first shown.
- ``straight_lining`` (a participant): the same verdict on every one of at least
  ``straight_line_min`` judgments, *and* that verdict contradicts the majority of the other
  participants on at least ``straight_line_disagree`` of the stories where others answered.
  The second condition spares honest people: someone shown five genuine upgrades rightly
  says "upgrade" five times and agrees with the crowd, while someone clicking the same
  button throughout disagrees with it on roughly every other story.
- ``own_value`` (a participant): at least ``own_value_min`` judgments of stories involving
  their own value (the canonical value of a card they wrote), and every one of them comes out
  in its favour ("upgrade" towards it, "not an upgrade" away from it).
- ``coordinated`` (a participant): a group of at least ``group_min`` participants whose
  answers are near-identical and given within a short time window. Each participant's
  answers become a preference profile: per (context, value), +1 each time they judged the
  value the wiser of a pair and -1 each time the other one ("not sure" adds nothing). Two
  participants are linked when the cosine similarity of their profiles is at least
  ``group_similarity`` and their median answer times are at most ``group_window_seconds``
  apart; the groups are the connected components of these links. A faction pushing one value
  shares a profile dominated by that value; honest participants judging different stories
  share little. Only participants with at least ``group_min_judgments`` answers take part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

__all__ = [
    "QualityFindings",
    "QualitySettings",
    "VoteRows",
    "coordinated",
    "find_all",
    "own_value_bias",
    "straight_lining",
    "too_fast",
]

TOO_FAST = "too_fast"
STRAIGHT_LINING = "straight_lining"
OWN_VALUE = "own_value"
COORDINATED = "coordinated"

UPGRADE, NOT_UPGRADE, UNSURE = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the rules (defaults mirror the VOTE_QUALITY_* settings)."""

    min_seconds: float = 4.0
    straight_line_min: int = 5
    straight_line_disagree: float = 0.4
    own_value_min: int = 3
    group_min: int = 3
    group_similarity: float = 0.75
    group_window_seconds: float = 1800.0
    group_min_judgments: int = 3


@dataclasses.dataclass(frozen=True, eq=False)
class VoteRows:
    """Answered judgments as parallel columns; row *i* is one judgment.

    ``judgment`` is an id for the row (the database id, or a row number in a simulation);
    ``story`` identifies the story shown (the hypothesis id), so answers of different people
    to the same story can be compared; times are seconds on any common clock.
    """

    judgment: np.ndarray
    participant: np.ndarray
    story: np.ndarray
    context: np.ndarray
    from_value: np.ndarray
    to_value: np.ndarray
    verdict: np.ndarray
    shown_at: np.ndarray
    answered_at: np.ndarray

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            dtype = np.float64 if field.name.endswith("_at") else np.int64
            object.__setattr__(self, field.name, np.asarray(getattr(self, field.name), dtype))
        if len({len(getattr(self, f.name)) for f in dataclasses.fields(self)}) > 1:
            raise ValueError("columns differ in length")

    def __len__(self) -> int:
        return len(self.judgment)


@dataclasses.dataclass(frozen=True)
class QualityFindings:
    """What the rules found: judgment ids and participant ids per reason, ascending."""

    judgments: dict[str, list[int]]
    participants: dict[str, list[int]]

    def flagged_participants(self) -> set[int]:
        return {p for ids in self.participants.values() for p in ids}

    def flagged_judgments(self) -> set[int]:
        return {j for ids in self.judgments.values() for j in ids}


def too_fast(rows: VoteRows, *, min_seconds: float) -> list[int]:
    """Ids of judgments answered less than *min_seconds* after their story was shown."""
    fast = (rows.answered_at - rows.shown_at) < min_seconds
    return sorted(rows.judgment[fast].tolist())


def straight_lining(rows: VoteRows, *, min_judgments: int, min_disagree: float) -> list[int]:
    """Participants who gave one verdict to everything, against the crowd (see module doc)."""
    if len(rows) == 0:
        return []
    participants, index = np.unique(rows.participant, return_inverse=True)
    n = np.bincount(index)
    per_verdict = np.zeros((len(participants), 3), dtype=np.int64)
    np.add.at(per_verdict, (index, rows.verdict), 1)
    candidates = (per_verdict.max(axis=1) == n) & (n >= min_judgments)
    if not candidates.any():
        return []
    # Verdict counts per story, so each answer can be compared with everyone else's.
    stories, story_index = np.unique(rows.story, return_inverse=True)
    story_counts = np.zeros((len(stories), 3), dtype=np.int64)
    np.add.at(story_counts, (story_index, rows.verdict), 1)
    others = story_counts[story_index].copy()
    others[np.arange(len(rows)), rows.verdict] -= 1  # leave the participant's own answer out
    answered_by_others = others.sum(axis=1) > 0
    top = others.max(axis=1, keepdims=True)
    # Against the crowd: the participant's verdict is not among the others' most common ones.
    against = answered_by_others & (others[np.arange(len(rows)), rows.verdict] < top[:, 0])
    compared = np.bincount(index, weights=answered_by_others, minlength=len(participants))
    disagreed = np.bincount(index, weights=against, minlength=len(participants))
    share = np.divide(disagreed, compared, out=np.zeros_like(disagreed), where=compared > 0)
    flagged = candidates & (compared > 0) & (share >= min_disagree)
    return participants[flagged].tolist()


def own_value_bias(
    rows: VoteRows, own_values: Mapping[int, Sequence[int]], *, min_judgments: int
) -> list[int]:
    """Participants who judged stories involving their own value at least *min_judgments*
    times and decided in its favour every time ("not sure" counts as not in favour)."""
    flagged = []
    by_participant: dict[int, list[int]] = {}
    for i, p in enumerate(rows.participant.tolist()):
        by_participant.setdefault(p, []).append(i)
    for participant, own in sorted(own_values.items()):
        mine = np.asarray(by_participant.get(participant, []), dtype=np.int64)
        if len(mine) < min_judgments or not own:
            continue
        own_set = np.asarray(sorted(own), dtype=np.int64)
        to_own = np.isin(rows.to_value[mine], own_set)
        from_own = np.isin(rows.from_value[mine], own_set)
        involved = to_own ^ from_own
        if involved.sum() < min_judgments:
            continue
        verdict = rows.verdict[mine]
        favour = (to_own & (verdict == UPGRADE)) | (from_own & (verdict == NOT_UPGRADE))
        if np.all(favour[involved]):
            flagged.append(participant)
    return flagged


def preference_profiles(rows: VoteRows) -> tuple[np.ndarray, sp.csr_array]:
    """(participant ids, sparse matrix participant x (context, value) of +1/-1 preferences)."""
    participants, p_index = np.unique(rows.participant, return_inverse=True)
    decided = rows.verdict != UNSURE
    wiser = np.where(rows.verdict == UPGRADE, rows.to_value, rows.from_value)[decided]
    other = np.where(rows.verdict == UPGRADE, rows.from_value, rows.to_value)[decided]
    context = rows.context[decided]
    keys = np.concatenate([np.stack([context, wiser], axis=1), np.stack([context, other], axis=1)])
    columns_, column = np.unique(keys, axis=0, return_inverse=True)
    column = column.reshape(-1)
    data = np.concatenate([np.ones(decided.sum()), -np.ones(decided.sum())])
    row = np.concatenate([p_index[decided], p_index[decided]])
    profile = sp.csr_array((data, (row, column)), shape=(len(participants), max(len(columns_), 1)))
    return participants, profile


def coordinated(
    rows: VoteRows,
    *,
    min_group: int,
    min_similarity: float,
    window_seconds: float,
    min_judgments: int,
) -> list[int]:
    """Participants in groups of near-identical answers within a time window (module doc)."""
    if len(rows) == 0:
        return []
    participants, profile = preference_profiles(rows)
    _, p_index = np.unique(rows.participant, return_inverse=True)
    answered = np.bincount(p_index, minlength=len(participants))
    # Median answer time of each participant: sort by (participant, time) and read the middle.
    order = np.lexsort((rows.answered_at, p_index))
    times_sorted = rows.answered_at[order]
    start = np.concatenate([[0], np.cumsum(answered)[:-1]])
    median_time = (
        times_sorted[start + (answered - 1) // 2] + times_sorted[start + answered // 2]
    ) / 2
    norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).reshape(-1))
    eligible = (answered >= min_judgments) & (norms > 0)
    if eligible.sum() < min_group:
        return []
    keep = np.flatnonzero(eligible)
    unit = sp.csr_array(sp.diags_array(1.0 / norms[keep]) @ profile[keep])
    similarity = (unit @ unit.T).tocoo()
    times = median_time[keep]
    linked = (
        (similarity.row != similarity.col)
        & (similarity.data >= min_similarity - 1e-12)
        & (np.abs(times[similarity.row] - times[similarity.col]) <= window_seconds)
    )
    graph = sp.csr_array(
        (np.ones(linked.sum()), (similarity.row[linked], similarity.col[linked])),
        shape=(len(keep), len(keep)),
    )
    _, component = csgraph.connected_components(graph, directed=False)
    sizes = np.bincount(component)
    in_group = sizes[component] >= min_group
    return sorted(participants[keep[in_group]].tolist())


def find_all(
    rows: VoteRows,
    own_values: Mapping[int, Sequence[int]],
    settings: QualitySettings = QualitySettings(),
) -> QualityFindings:
    """Every rule on the same rows."""
    return QualityFindings(
        judgments={TOO_FAST: too_fast(rows, min_seconds=settings.min_seconds)},
        participants={
            STRAIGHT_LINING: straight_lining(
                rows,
                min_judgments=settings.straight_line_min,
                min_disagree=settings.straight_line_disagree,
            ),
            OWN_VALUE: own_value_bias(rows, own_values, min_judgments=settings.own_value_min),
            COORDINATED: coordinated(
                rows,
                min_group=settings.group_min,
                min_similarity=settings.group_similarity,
                window_seconds=settings.group_window_seconds,
                min_judgments=settings.group_min_judgments,
            ),
        },
    )

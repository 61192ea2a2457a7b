"""The vote-quality rules (graph/quality.py) on constructed cases, each beside an honest case
that it must not flag. Pure functions: no database."""

from __future__ import annotations

import numpy as np

from graph import quality
from graph.quality import NOT_UPGRADE, UNSURE, UPGRADE, QualitySettings, VoteRows


def rows(answers):
    """VoteRows from (participant, story (from, to), verdict, shown_at, answered_at) tuples;
    one context; the story id is derived from the pair."""
    participant, pairs, verdict, shown, answered = zip(*answers, strict=True)
    from_value = [a for a, _ in pairs]
    to_value = [b for _, b in pairs]
    return VoteRows(
        judgment=np.arange(len(answers)) + 100,
        participant=participant,
        story=[a * 1000 + b for a, b in pairs],
        context=[1] * len(answers),
        from_value=from_value,
        to_value=to_value,
        verdict=verdict,
        shown_at=shown,
        answered_at=answered,
    )


def paced(participant, stories, *, start=0.0, seconds=30.0):
    """One participant's answers [(story, verdict)] at a reading pace."""
    return [
        (
            participant,
            story,
            verdict,
            start + i * (seconds + 5),
            start + i * (seconds + 5) + seconds,
        )
        for i, (story, verdict) in enumerate(stories)
    ]


def test_answers_faster_than_reading_are_flagged_one_by_one():
    data = rows(
        paced(1, [((1, 2), UPGRADE), ((2, 3), UPGRADE)])
        + paced(2, [((1, 3), UPGRADE)], seconds=1.5)
    )
    assert quality.too_fast(data, min_seconds=4) == [102]


def test_a_careful_reader_is_not_too_fast():
    data = rows(paced(1, [((1, 2), UPGRADE), ((2, 3), NOT_UPGRADE)], seconds=4.0))
    assert quality.too_fast(data, min_seconds=4) == []


# Five stories every participant sees; the crowd (participants 1-6) answers them honestly.
STORIES = [(1, 2), (3, 2), (2, 4), (5, 4), (1, 5)]
CROWD = [UPGRADE, NOT_UPGRADE, UPGRADE, NOT_UPGRADE, UPGRADE]


def crowd():
    return [a for p in range(1, 7) for a in paced(p, list(zip(STORIES, CROWD, strict=True)))]


def test_the_same_answer_to_everything_against_the_crowd_is_straight_lining():
    clicker = paced(9, [(story, UPGRADE) for story in STORIES])
    unsure = paced(10, [(story, UNSURE) for story in STORIES])
    data = rows(crowd() + clicker + unsure)
    assert quality.straight_lining(data, min_judgments=5, min_disagree=0.4) == [9, 10]


def test_the_same_answer_to_genuine_upgrades_is_not_straight_lining():
    """Ada sees five stories the crowd agrees are upgrades and says so five times."""
    upgrades = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]
    others = [a for p in range(1, 5) for a in paced(p, [(s, UPGRADE) for s in upgrades])]
    ada = paced(20, [(s, UPGRADE) for s in upgrades])
    mixed = paced(21, list(zip(STORIES, CROWD, strict=True)))
    data = rows(others + ada + mixed)
    assert quality.straight_lining(data, min_judgments=5, min_disagree=0.4) == []


def test_too_few_answers_are_never_straight_lining():
    data = rows(crowd() + paced(9, [(story, UPGRADE) for story in STORIES[:4]]))
    assert quality.straight_lining(data, min_judgments=5, min_disagree=0.4) == []


def test_always_choosing_ones_own_value_is_flagged():
    """Value 7 is Mallory's; every story involving it comes out in its favour, whichever
    direction it was told in."""
    mallory = paced(
        3, [((1, 7), UPGRADE), ((7, 2), NOT_UPGRADE), ((4, 7), UPGRADE), ((1, 2), UPGRADE)]
    )
    data = rows(mallory)
    assert quality.own_value_bias(data, {3: [7]}, min_judgments=3) == [3]


def test_judging_ones_own_value_fairly_is_not_flagged():
    # Ada once finds another value wiser than hers; Bo met his own value only twice.
    ada = paced(1, [((1, 7), UPGRADE), ((7, 2), UPGRADE), ((4, 7), UPGRADE)])
    bo = paced(2, [((1, 8), UPGRADE), ((8, 2), NOT_UPGRADE), ((1, 2), UPGRADE)])
    # "Not sure" about one's own value is not choosing it.
    cy = paced(3, [((1, 9), UPGRADE), ((9, 2), NOT_UPGRADE), ((4, 9), UNSURE)])
    data = rows(ada + bo + cy)
    assert quality.own_value_bias(data, {1: [7], 2: [8], 3: [9]}, min_judgments=3) == []


GROUP = {"min_group": 3, "min_similarity": 0.75, "window_seconds": 1800, "min_judgments": 3}


def faction_member(participant, others, start):
    """Judges value 7 against the given others, always for 7."""
    return paced(
        participant,
        [((o, 7), UPGRADE) if i % 2 else ((7, o), NOT_UPGRADE) for i, o in enumerate(others)],
        start=start,
    )


def test_a_group_with_near_identical_answers_in_a_short_window_is_coordinated():
    faction = [
        *faction_member(10, [1, 2, 3, 4, 5], start=0),
        *faction_member(11, [2, 3, 4, 5, 6], start=120),
        *faction_member(12, [1, 3, 5, 6, 8], start=400),
    ]
    assert quality.coordinated(rows(faction), **GROUP) == [10, 11, 12]


def test_the_same_answers_on_different_days_or_in_a_pair_are_not_coordinated():
    day = 24 * 3600
    apart = [
        *faction_member(10, [1, 2, 3, 4, 5], start=0),
        *faction_member(11, [2, 3, 4, 5, 6], start=day),
        *faction_member(12, [1, 3, 5, 6, 8], start=2 * day),
    ]
    assert quality.coordinated(rows(apart), **GROUP) == []
    pair = faction_member(10, [1, 2, 3, 4, 5], start=0) + faction_member(11, [2, 3, 4, 5, 6], 60)
    assert quality.coordinated(rows(pair), **GROUP) == []


def test_honest_participants_answering_together_are_not_coordinated():
    """A panel of eight arriving at once, each judging different stories honestly (the wiser
    value has the higher id)."""
    rng = np.random.default_rng(5)
    answers = []
    for p in range(8):
        pairs = rng.choice(20, size=(5, 2), replace=False)
        stories = [((int(a), int(b)), UPGRADE if b > a else NOT_UPGRADE) for a, b in pairs]
        answers += paced(p, stories, start=p * 10)
    assert quality.coordinated(rows(answers), **GROUP) == []


def test_find_all_reports_each_rule_under_its_reason():
    faction = [
        *faction_member(10, [1, 2, 3, 4, 5], start=0),
        *faction_member(11, [2, 3, 4, 5, 6], start=120),
        *faction_member(12, [1, 3, 5, 6, 8], start=400),
    ]
    findings = quality.find_all(rows(faction), {10: [7], 11: [7], 12: [7]}, QualitySettings())
    assert findings.participants[quality.OWN_VALUE] == [10, 11, 12]
    assert findings.participants[quality.COORDINATED] == [10, 11, 12]
    assert findings.judgments[quality.TOO_FAST] == []
    assert findings.flagged_participants() == {10, 11, 12}

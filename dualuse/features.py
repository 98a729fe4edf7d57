"""Feature blocks of the trained model: sentence embeddings, hashed character n-grams and the rules'
per-category points. Each block is stateless given its configuration, so a saved model needs only
the head's arrays and the names of the blocks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from .encoders import Encoder
from .errors import InvalidArgumentError
from .rules import RulesClassifier
from .text import normalize

__all__ = ["char_ngrams", "FeatureBuilder"]


def char_ngrams(n_features: int) -> HashingVectorizer:
    """Hashed character 1–4-grams inside word boundaries, on the normalised text (language-agnostic;
    catches part numbers, Cyrillic stems and CJK words that English embeddings miss)."""
    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(1, 4),
        n_features=n_features,
        alternate_sign=False,
        norm="l2",
        preprocessor=normalize,
        dtype=np.float32,
    )


class FeatureBuilder:
    """Turns raw texts into the model's feature matrix (CSR, float32)."""

    def __init__(
        self,
        encoder: Encoder | None,
        *,
        n_char_features: int = 0,
        rules: RulesClassifier | None = None,
        rules_scale: float = 1 / 3,
        embedding_scale: float = 1.0,
    ) -> None:
        self.encoder = encoder
        self.n_char_features = n_char_features
        self.rules = rules
        self.rules_scale = rules_scale
        self.embedding_scale = embedding_scale
        self._hasher = char_ngrams(n_char_features) if n_char_features else None

    @property
    def n_features(self) -> int:
        n = self.encoder.dim if self.encoder is not None else 0
        n += self.n_char_features
        n += len(self.rules.labels) if self.rules is not None else 0
        return n

    def blocks(self) -> list[str]:
        out = []
        if self.encoder is not None:
            out.append(f"embedding:{self.encoder.name}:{self.encoder.dim}")
        if self.n_char_features:
            out.append(f"char_wb_1_4:{self.n_char_features}")
        if self.rules is not None:
            out.append(f"rules:{len(self.rules.labels)}")
        return out

    def embed(self, texts: Sequence[str], *, show_progress_bar: bool | None = None) -> np.ndarray:
        """The embedding block before scaling: the encoder's vectors of ``texts`` (needs an encoder)."""
        if self.encoder is None:
            raise InvalidArgumentError("this feature builder has no embedding block (encoder None); "
                                       "build it with an encoder to embed texts")
        return np.asarray(self.encoder.encode(list(texts), show_progress_bar=show_progress_bar), dtype=np.float32)

    def transform(self, texts: Sequence[str], *, show_progress_bar: bool | None = None,
                  embeddings: np.ndarray | None = None) -> sp.csr_matrix:
        """The feature matrix of ``texts``; ``embeddings`` (the encoder's output for ``texts``, e.g. from
        an earlier :meth:`embed`) are used instead of encoding again."""
        parts: list[sp.spmatrix] = []
        if self.encoder is not None:
            emb = self.embed(texts, show_progress_bar=show_progress_bar) if embeddings is None else embeddings
            if np.shape(emb) != (len(texts), self.encoder.dim):
                raise InvalidArgumentError(
                    f"expected embeddings of shape ({len(texts)}, {self.encoder.dim}) for {len(texts)} texts, got "
                    f"{np.shape(emb)}; pass the encoder's output for the same texts (DualUseClassifier.embed)")
            parts.append(sp.csr_matrix(np.asarray(emb, dtype=np.float32) * self.embedding_scale))
        if self._hasher is not None:
            parts.append(self._hasher.transform(texts))
        if self.rules is not None:
            pts = self.rules.text_points(list(texts)).astype(np.float32)
            none_i = self.rules.labels.index("none")
            pts[:, none_i] -= self.rules.none_prior  # the prior is a constant; keep only evidence
            parts.append(sp.csr_matrix(pts * self.rules_scale))
        if not parts:
            raise ValueError("no feature block is enabled")
        return sp.hstack(parts, format="csr", dtype=np.float32)

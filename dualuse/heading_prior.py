"""Category evidence from the HS heading a text reads as: the heading classifier's n-gram part.

The category model learns 23 categories; the heading classifier (:mod:`dualuse.hs_heads`) learns the
1,228 HS 2022 headings from the nomenclature and the catalog of marketplace titles. What a heading is
decides a lot of what a line is and is not: "FOAM GLIDER PLANE TOY HAND LAUNCH 48CM" reads as heading
9503 (toys), "IC TEXAS INSTRUMENTS TPS54331DR SOIC-8" as 8542 (integrated circuits), whatever the
category model made of their words. :class:`HeadingPrior` turns the heading probabilities into
category probabilities through the taxonomy and multiplies them into the model's (a product of
experts)::

    q(category)  = sum over headings h of softmax(sharpness × logits(text))[h] × share(h, category)
    p'(category) ∝ p_model(category) × q(category) ** weight

``share(h, c)`` is the share of the heading's HS 2022 subheadings that the taxonomy maps to ``c``
(e.g. 8471: ``computers`` for all its subheadings; 8541: part ``electronic_components``, part ``none``).
A category with no HS prefix (``body_armour``: vests are declared as garments, plates as plastics or
steel) cannot be told from ordinary goods by its heading, so it gets the evidence of ``none``.
For the fast model only the n-gram part of the heading classifier is used (no MiniLM), so it stays
fast. A model that encodes with the classifier's own encoder (``accurate``: MiniLM) hands its embeddings
to the prior, which then also reads the classifier's embedding part at no extra encoding cost (see
*Embedding part* below). The screener applies the prior to the model's probabilities, never to the rules'.

``sharpness`` (5) and ``weight`` (0.2) were chosen on the two dev sets (the held-out curated lines and
the held-out catalog fifth; the real-world sets only confirmed), with the fast model through the whole
screener (rules fallback and override included):

=====================  ===============  ================  =======================  ====================
sharpness / weight     curated mF1      curated FPR none  catalog FPR none / acc   HSCodeComp FPR none
=====================  ===============  ================  =======================  ====================
no prior (limit on)    0.922            3.4 %             3.0 % / 0.963            5.7 %
5 / 0.2 (shipped)      0.936            2.3 %             1.4 % / 0.980            4.1 %
3 / 0.2                0.927            2.3 %             1.9 % / 0.974            5.4 %
8 / 0.2                0.927            2.9 %             1.2 % / 0.983            3.8 %
5 / 0.1                0.925            3.4 %             2.2 % / 0.972            5.6 %
5 / 0.3                0.926            2.9 %             1.1 % / 0.983            3.9 %
5 / 0.4                0.923            4.0 %             1.0 % / 0.985            3.4 %
=====================  ===============  ================  =======================  ====================

All rows have the rules override stop at a model that gives ``none`` ≥ 0.99
(``Screener.override_max_none_p``, the limit then). Re-checked on 2026-12-08 with the model retrained on
catalog batches 5 and 6 (same limit; curated macro-F1): 5 / 0.2 0.939, 5 / 0.15 0.935, 5 / 0.3 0.933,
5 / 0.4 0.932, 3 / 0.3 0.938, 8 / 0.3 0.923, so 5 / 0.2 stays; the limit is 0.97 since (see
``Screener._rules_override``). Mixing linearly instead of multiplying (``(1 - w) p + w q``) was worse at every setting tried (curated
macro-F1 ≤ 0.919 for the same catalog gain). The prior costs about as much time per new line as the
rest of the fast model (see ``benchmarks/README.md``).

**Embedding part (2026-12-08, accurate model).** With the embeddings, the heading logits are
``sharpness × (text logits + embedding_weight × log softmax(E @ coef.T + intercept))``: the heading
classifier as :mod:`dualuse.hs_heads` fuses it, with the embedding part weighted
``embedding_weight``. Chosen on the same two dev sets with the accurate model through the whole screener
(limit 0.97), curated macro-F1 / FPR on its ``none`` lines, catalog FPR ``none`` / risk recall /
accuracy (of 5,016 ``none`` and 927 risk lines); the real-world sets were scored on their analysis half
only (texts whose sha256 is even) and played no part in the choice:

================================================  ===============  ==========================  ==================
accurate model, prior                             curated          catalog                     real-world half A
================================================  ===============  ==========================  ==================
none                                              0.938, 5/175     146/5016, 822/927, 0.954    HSCodeComp 11/15 risk, 15/309 none flagged; ATLAS 5/16, 5/191
n-gram part, 5 / 0.2 (before)                     0.950, 6/175     83/5016, 870/927, 0.973     11/15, 12/309; 5/16, 5/191
n-gram part, 5 / 0.3                              0.942, 7/175     76/5016, 878/927, 0.975     11/15, 11/309; 5/16, 5/191
n-gram part, 3 / 0.3                              0.950, 4/175     85/5016, 866/927, 0.972     11/15, 12/309; 5/16, 5/191
both, embedding_weight 1, 2 / 0.3                 0.948, 8/175     76/5016, 878/927, 0.975     12/15, 14/309; 7/16, 5/191
both, embedding_weight 1, 1 / 0.5                 0.946, 7/175     76/5016, 870/927, 0.974     12/15, 14/309; 7/16, 5/191
both, embedding_weight 1, 3 / 1.0                 0.906, 16/175    90/5016, 890/927, 0.974     12/15, 21/309; 9/16, 4/191
both, embedding_weight 0.5, 2.5 / 0.3             0.953, 7/175     77/5016, 874/927, 0.975     11/15, 13/309; 6/16, 5/191
both, embedding_weight 0.75, 2 / 0.3 (shipped)    0.953, 7/175     78/5016, 875/927, 0.975     12/15, 14/309; 7/16, 5/191
both, embedding_weight 0.75, 2 / 0.4              0.945, 11/175    73/5016, 880/927, 0.976     12/15, 14/309; 7/16, 5/191
both, embedding_weight 0.75, 1.5 / 0.4            0.952, 7/175     77/5016, 875/927, 0.975     12/15, 14/309; 7/16, 5/191
================================================  ===============  ==========================  ==================

The shipped setting is in the middle of a plateau (27 settings of embedding_weight 0.5/0.75/1,
sharpness 1.5/2/2.5, weight 0.25/0.3/0.4 gave curated macro-F1 0.938–0.953). Against the n-gram part
alone it is as good or better on both dev sets: 5 fewer false alarms and 5 more risk lines found in the
catalog, curated macro-F1 0.950 → 0.953 (one more curated ``none`` line flagged). Only after the choice
the other real-world half (B) was scored: no change in recall (HSCodeComp 7/8, ATLAS 4/12) and one more
false alarm on ATLAS (7 → 8 of 181). The fast model cannot use it: MiniLM would make it 5–8× slower (the
scale benchmark's default / accurate ratios, ``benchmarks/README.md``). Cost in the accurate model: the n-gram part and a (384 × 1,228) product
per new line, next to MiniLM, which encodes each line once (:meth:`dualuse.model.DualUseClassifier.embed`):
1,000 held-out catalog lines took 1.01× as long as without the prior (median of 3 alternating runs), and
``dualuse score --model accurate`` on the scale benchmark's 10,000-line file 1.02× (36.0 / 35.4 s, 2 runs each).

The fast model's counterpart was tried and dropped: a heading classifier fitted the same way on the
static embeddings (logistic regression, C = 30, the 41,035 index documents), added to the n-gram part
with factor 0.25, 0.5 or 1 at sharpness / weight 5 / 0.2, 3 / 0.2, 3 / 0.3 or 2 / 0.3, lowered held-out
curated macro-F1 in all 12 settings (0.927–0.938 against 0.943) for at most 8 fewer false alarms in
the catalog. Also tried: ``shares`` counted over the heading classifier's training documents instead of
over HS 2022 subheadings (8431: ``earthmoving`` 0.67 instead of 0.5, since the catalog has more lines
for risk subheadings); with both models curated macro-F1 did not change and catalog false alarms did
not fall (fast 90 → 90, accurate 78 → 80), so subheadings stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.special import log_softmax, softmax

from .errors import InvalidArgumentError
from .hs_heads import SHIPPED_HEADS, HeadingClassifier, TextHeads
from .taxonomy import Taxonomy

__all__ = ["HEADING_PRIOR_SHARPNESS", "HEADING_PRIOR_WEIGHT", "EMBEDDING_PRIOR_SHARPNESS", "EMBEDDING_PRIOR_WEIGHT",
           "EMBEDDING_PART_WEIGHT", "HeadingPrior"]

HEADING_PRIOR_SHARPNESS = 5.0
"""Factor on the n-gram part's logits before the softmax over headings (its raw logits are one-vs-rest
decision values, far flatter than probabilities)."""
HEADING_PRIOR_WEIGHT = 0.2
"""Exponent of the heading evidence in the product with the model's probabilities."""
EMBEDDING_PRIOR_SHARPNESS = 2.0
"""Sharpness when the prior also reads the embedding part (a model on the classifier's encoder, MiniLM)."""
EMBEDDING_PRIOR_WEIGHT = 0.3
"""Weight when the prior also reads the embedding part."""
EMBEDDING_PART_WEIGHT = 0.75
"""Factor on the embedding part's log-probabilities, added to the n-gram part's logits."""


@dataclass(frozen=True, eq=False)
class HeadingPrior:
    """The heading classifier's n-gram part as category evidence (see the module docstring).

    Attributes:
        text: the n-gram part (:class:`dualuse.hs_heads.TextHeads`).
        headings: its 4-digit headings, in the order of its rows.
        shares: (n_headings, n_labels) share of each heading's subheadings per category (categories
            without HS prefixes: the share of ``none``).
        labels: the category ids of the columns of ``shares`` (a taxonomy's ``ids``).
        sharpness: factor on the logits before the softmax over headings.
        weight: exponent of the heading evidence (0: the prior changes nothing).
        unmapped: the categories without HS prefixes (their column repeats ``none``'s).
        coef, intercept: the embedding part (``None``: the prior reads the n-gram part only).
        embedding_weight: factor on the embedding part's log-probabilities.
        encoder: the name of the encoder whose embeddings the embedding part reads (``minilm``).
    """

    text: TextHeads
    headings: np.ndarray
    shares: np.ndarray
    labels: tuple[str, ...]
    sharpness: float = HEADING_PRIOR_SHARPNESS
    weight: float = HEADING_PRIOR_WEIGHT
    unmapped: tuple[str, ...] = ()
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None
    embedding_weight: float = EMBEDDING_PART_WEIGHT
    encoder: str | None = None

    def __post_init__(self) -> None:
        n = len(self.headings)
        if self.coef is not None and (self.coef.ndim != 2 or self.coef.shape[0] != n
                                      or self.intercept is None or self.intercept.shape != (n,)):
            raise InvalidArgumentError(
                f"expected an embedding part of {len(self.headings)} rows (one per heading) with an intercept, got "
                f"coef of shape {self.coef.shape} and intercept {None if self.intercept is None else self.intercept.shape}")
        if self.shares.shape != (len(self.headings), len(self.labels)):
            raise InvalidArgumentError(
                f"expected shares of shape ({len(self.headings)}, {len(self.labels)}) (headings × labels), "
                f"got {self.shares.shape}")
        if not (self.sharpness > 0 and self.weight >= 0):
            raise InvalidArgumentError(
                f"expected sharpness > 0 and weight >= 0, got sharpness={self.sharpness}, weight={self.weight}")

    @property
    def needs_embeddings(self) -> bool:
        """Whether :meth:`combine` needs the texts' embeddings (the prior reads the embedding part)."""
        return self.coef is not None

    @classmethod
    def from_heads(cls, heads: HeadingClassifier, taxonomy: Taxonomy, *, embeddings: bool = False,
                   sharpness: float | None = None, weight: float | None = None,
                   embedding_weight: float = EMBEDDING_PART_WEIGHT) -> "HeadingPrior":
        """The prior of a heading classifier with a text part, mapped through ``taxonomy``'s HS prefixes;
        with ``embeddings``, it also reads the classifier's embedding part (the model must then run the
        classifier's encoder, see :meth:`combine`). ``sharpness`` and ``weight`` default to the values
        chosen for each kind (see the module docstring)."""
        if heads.text is None:
            raise InvalidArgumentError(
                "the heading prior needs a heading classifier with an n-gram text part; "
                "rebuild it with `make hs-heads`")
        from .hs import _nomenclature

        labels = tuple(taxonomy.ids)
        col = {c: j for j, c in enumerate(labels)}
        codes = [c for c in _nomenclature() if len(c) == 6]  # the HS 2022 subheadings
        rows = heads.columns_for(codes)
        cats = [col[str(c) if (c := taxonomy.category_for_hs(code)) is not None else "none"] for code in codes]
        shares = np.zeros((len(heads.headings), len(labels)), dtype=np.float32)
        known = rows >= 0
        np.add.at(shares, (rows[known], np.asarray(cats)[known]), 1)
        empty = shares.sum(axis=1) == 0
        shares[empty, col["none"]] = 1  # a heading without subheadings in HS 2022: counts as ordinary
        shares /= shares.sum(axis=1, keepdims=True)
        unmapped = tuple(c for c in labels if c != "none" and not taxonomy[c].hs_prefixes)
        for c in unmapped:  # no heading identifies these: a heading is as (in)compatible with them as with none
            shares[:, col[c]] = shares[:, col["none"]]
        if sharpness is None:
            sharpness = EMBEDDING_PRIOR_SHARPNESS if embeddings else HEADING_PRIOR_SHARPNESS
        if weight is None:
            weight = EMBEDDING_PRIOR_WEIGHT if embeddings else HEADING_PRIOR_WEIGHT
        part = {}
        if embeddings:
            part = {"coef": np.asarray(heads.coef, dtype=np.float32), "intercept": np.asarray(heads.intercept, dtype=np.float32),
                    "embedding_weight": float(embedding_weight), "encoder": heads.info.get("encoder", "minilm")}
        return cls(heads.text, np.asarray(heads.headings), shares, labels, float(sharpness), float(weight), unmapped, **part)

    @classmethod
    def load(cls, taxonomy: Taxonomy, folder: str | Path = SHIPPED_HEADS, **params: float | bool) -> "HeadingPrior":
        """The prior of the heading classifier saved in ``folder`` (default: the shipped ``models/hs_heads``);
        ``params`` go to :meth:`from_heads`."""
        return cls.from_heads(HeadingClassifier.load(folder), taxonomy, **params)  # type: ignore[arg-type]

    def heading_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n, n_headings) probabilities of the headings: softmax of :attr:`sharpness` × the n-gram logits,
        to which :attr:`embedding_weight` × the embedding part's log-probabilities are added first when the
        prior reads it (``embeddings``: the :attr:`encoder`'s vectors of ``texts``)."""
        z = self.text.logits(texts)
        if self.coef is not None:
            assert self.intercept is not None
            E = self._check_embeddings(embeddings, len(texts))
            z = z + self.embedding_weight * log_softmax(E @ self.coef.T + self.intercept, axis=1)
        return softmax(self.sharpness * z, axis=1)

    def _check_embeddings(self, embeddings: np.ndarray | None, n: int) -> np.ndarray:
        assert self.coef is not None
        if embeddings is None:
            raise InvalidArgumentError(
                f"this heading prior also reads {self.encoder} embeddings: pass embeddings= for the texts, or "
                "build it with HeadingPrior.load(taxonomy, embeddings=False)")
        E = np.asarray(embeddings, dtype=np.float32)
        if E.shape != (n, self.coef.shape[1]):
            raise InvalidArgumentError(
                f"expected {self.encoder} embeddings of shape ({n}, {self.coef.shape[1]}), got {E.shape}")
        return E

    def combine(self, proba: np.ndarray, texts: Sequence[str], *, embeddings: np.ndarray | None = None,
                batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``proba`` (n, n_labels; columns :attr:`labels`) times the heading evidence, renormalised, and
        per text the index of the heading it reads as best and that heading's probability (for
        :meth:`describe`). ``embeddings`` (the :attr:`encoder`'s vectors of ``texts``) are needed when
        :attr:`needs_embeddings`. Texts are read ``batch_size`` at a time (memory: batch × headings floats)."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != (len(texts), len(self.labels)):
            raise InvalidArgumentError(
                f"expected probabilities of shape ({len(texts)}, {len(self.labels)}), got {proba.shape}")
        if self.coef is not None:
            embeddings = self._check_embeddings(embeddings, len(texts))
        shares = self.shares.astype(np.float32)
        out = np.empty_like(proba)
        best = np.zeros(len(texts), dtype=np.int64)
        best_p = np.zeros(len(texts), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            heads = self.heading_proba(texts[s : s + batch_size],
                                       None if embeddings is None else embeddings[s : s + batch_size])
            best[s : s + len(heads)] = heads.argmax(axis=1)
            best_p[s : s + len(heads)] = heads.max(axis=1)
            q = (heads @ shares).astype(np.float64)
            logp = np.log(np.clip(proba[s : s + len(heads)], 1e-12, None)) + self.weight * np.log(np.clip(q, 1e-12, None))
            out[s : s + len(heads)] = softmax(logp, axis=1)
        return out, best, best_p

    def describe(self, heading: int, p: float) -> str:
        """One line of evidence: the heading (row ``heading``) the text reads as with probability ``p``,
        and the category it points to."""
        from .hs import hs_description

        h = str(self.headings[heading])
        title = (hs_description(h) or "").split(";")[0]
        title = title if len(title) <= 60 else title[:59].rstrip(" ,(") + "…"
        return f"reads as HS heading {h} ({title}) p={p:.2f} -> {self.labels[int(self._points_to[heading])]}"

    @cached_property
    def _points_to(self) -> np.ndarray:
        """Per heading, the column of the category most of its subheadings map to (never an unmapped one)."""
        return np.where(np.isin(self.labels, self.unmapped), -1.0, self.shares).argmax(axis=1)

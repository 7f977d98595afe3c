"""The relevance stage: re-orders the hybrid candidates and gives each a calibrated P(this provision answers the
question), from a learned model over the candidates' evidence (and, when one is shipped, a cross-encoder).

The stage's files live in the index folder (``relevance/``: ``stage.json`` + the model files it names) and the manifest's
query section names them, like the query adapter; ``build_index`` copies them in from the model's shipped stage
(``index/data/relevance/<model>/``) when the index is built with that model.  Inference only: numpy, LightGBM's
Booster, ONNX Runtime — no torch, no training code (that is ``eval/relevance/``).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.answer_types import answer_types
from index.query_terms import words

#: Candidates the stage judges (hybrid top-N, one per provision).
TOP_N = 30
STAGE_FILE = "stage.json"
#: A stage with sentence features: its index's sentence vectors and each chunk's first sentence (index.sentences).
SENTENCE_VECTORS, SENTENCE_STARTS = "sentence_vectors.npy", "sentence_starts.npy"
_CJK = re.compile("[\u3400-\u9fff]")

FEATURES = (
    "fused", "cos", "bm25", "bm25_sat", "coverage", "title_cov", "path_cov", "bigram", "log_len", "rank",
    "rank_cos", "rank_bm25", "d_fused", "d_cos", "r_bm25", "d_cov", "top_fused", "top_cos", "max_cov5", "same_doc",
    "doc_first_rank", "piece", "q_tokens", "q_chars", "q_unknown", "cjk", "gap_fused", "gap_cos",
    "q_quantity", "num", "num_missing",
)
#: Sentence-level features (``index.sentences``): the candidate's best sentence's cosine to the question, its distance
#: to the list's best, its margin over the runner-up, its rank, and how much it beats the whole chunk's cosine.  Only a
#: stage that lists them needs the index's sentence vectors.
SENTENCE_FEATURES = ("sent", "d_sent", "gap_sent", "rank_sent", "sent_gain")
ALL_FEATURES = FEATURES + SENTENCE_FEATURES


@dataclass(frozen=True)
class Evidence:
    """What the searcher knows of each candidate (arrays in candidate order, best fused first)."""

    query: str  # the cleaned question
    fused: np.ndarray
    cos: np.ndarray
    bm25: np.ndarray
    coverage: np.ndarray  # IDF-weighted share of the question's words in the chunk (LexicalIndex.coverage)
    titles: tuple[str, ...]
    paths: tuple[str, ...]
    texts: tuple[str, ...]
    doc_ids: tuple[str, ...]
    pieces: tuple[bool, ...]  # the chunk is one piece of a longer provision
    idf: dict  # IDF of each question word the index knows
    unknown_idf: float  # summed IDF of the question words it does not know
    n_tokens: int  # distinct question words
    sent: np.ndarray | None = None  # each candidate's best sentence cosine (only for a stage with sentence features)

    @classmethod
    def of(cls, lexical, text: str, hits, fused, cos, bm25, rows, sent=None) -> Evidence:
        """The evidence of ``hits`` (and their fused, cosine and BM25 scores and index rows) for the question."""
        idf, unknown, n_tokens = lexical.idf_split(text)
        return cls(query=text, fused=np.asarray(fused, np.float64), cos=np.asarray(cos, np.float64),
                   bm25=np.asarray(bm25, np.float64), coverage=lexical.coverage(text, np.asarray(rows, np.int64)),
                   titles=tuple(h.title or "" for h in hits), paths=tuple(" ".join(h.path) for h in hits),
                   texts=tuple(h.text for h in hits), doc_ids=tuple(h.doc_id for h in hits),
                   pieces=tuple("~" in h.chunk_id for h in hits), idf=idf, unknown_idf=unknown, n_tokens=n_tokens,
                   sent=None if sent is None else np.asarray(sent, np.float64))


def lexical_question(text: str, concepts=()) -> str:
    """The question as the stage's word features read it: the text, plus the Chinese words of its concepts — the
    dictionary translation of an English question (``index.translate``) or the official words of a Chinese question's
    everyday words (``index.everyday``) — which BM25 already matches.  Without them an English question's coverage,
    title/path overlap and bigram features are all zero and its words all "unknown", so the stage ranked its candidates
    on cosines alone (the same function on the training side: eval/relevance/scoring.py)."""
    added = words(concepts)
    return f"{text} {' '.join(added)}" if added else text


def _bigrams(text: str) -> set[str]:
    t = "".join(ch for ch in text if _CJK.match(ch))
    return {t[i:i + 2] for i in range(len(t) - 1)}


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(-x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    return r


def gap(x: np.ndarray) -> np.ndarray:
    """Each candidate's score minus the best score among the *other* candidates: the top one's margin over the
    runner-up (positive when one provision stands out, as for a question that one provision answers), the others'
    distance below the top.  ``d_fused``/``d_cos`` (distance to the top) are 0 for the top candidate whatever the
    runner-up scores, so the stage could not see a clear winner from a crowd of near-ties before these."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(len(x))
    order = np.argsort(-x, kind="stable")
    best, second = x[order[0]], x[order[1]]
    out = x - best
    out[order[0]] = best - second
    return out


def features(ev: Evidence, names=FEATURES) -> np.ndarray:
    """The feature matrix (candidates × ``names``: ``FEATURES`` by default, any of ``ALL_FEATURES``) of one question."""
    n = len(ev.fused)
    if n == 0:
        return np.zeros((0, len(names)))
    total = sum(ev.idf.values()) or 1.0
    title_cov = np.array([sum(w for t, w in ev.idf.items() if t in title) / total for title in ev.titles])
    path_cov = np.array([sum(w for t, w in ev.idf.items() if t in path) / total for path in ev.paths])
    qb = _bigrams(ev.query)
    bigram = np.array([sum(b in f"{ti} {pa} {te}" for b in qb) / len(qb) if qb else 0.0
                       for ti, pa, te in zip(ev.titles, ev.paths, ev.texts)])
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, d in enumerate(ev.doc_ids):
        count[d] = count.get(d, 0) + 1
        first.setdefault(d, i)
    fused, cos, bm25, cov = (np.asarray(a, dtype=np.float64) for a in (ev.fused, ev.cos, ev.bm25, ev.coverage))
    top_f, top_c = fused.max(), cos.max()
    asks, states = answer_types(ev.query, ev.texts)
    cols = {
        "fused": fused, "cos": cos, "bm25": bm25, "bm25_sat": bm25 / (bm25 + 10.0), "coverage": cov,
        "title_cov": title_cov, "path_cov": path_cov, "bigram": bigram,
        "log_len": np.log1p([len(t) for t in ev.texts]), "rank": np.arange(n, dtype=np.float64),
        "rank_cos": _rank(cos), "rank_bm25": _rank(bm25), "d_fused": fused - top_f, "d_cos": cos - top_c,
        "r_bm25": bm25 / (bm25.max() or 1.0), "d_cov": cov - cov.max(), "top_fused": np.full(n, top_f),
        "top_cos": np.full(n, top_c), "max_cov5": np.full(n, cov[:5].max()),
        "same_doc": np.array([count[d] for d in ev.doc_ids], dtype=np.float64),
        "doc_first_rank": np.array([first[d] for d in ev.doc_ids], dtype=np.float64),
        "piece": np.array(ev.pieces, dtype=np.float64), "q_tokens": np.full(n, float(ev.n_tokens)),
        "q_chars": np.full(n, float(len(ev.query))),
        "q_unknown": np.full(n, ev.unknown_idf / ((sum(ev.idf.values()) + ev.unknown_idf) or 1.0)),
        "cjk": np.full(n, float(bool(_CJK.search(ev.query)))), "gap_fused": gap(fused), "gap_cos": gap(cos),
        "q_quantity": np.full(n, asks), "num": states, "num_missing": asks * (1.0 - states),
    }
    if set(names) & set(SENTENCE_FEATURES):
        if ev.sent is None:
            raise ValueError("this relevance stage reads sentence cosines, and the search gave none")
        cols |= sentence_columns(ev.sent, cos)
    return np.stack([np.asarray(cols[f], dtype=np.float64) for f in names], axis=1)


def sentence_columns(sent, cos) -> dict[str, np.ndarray]:
    """The ``SENTENCE_FEATURES`` of candidates with best-sentence cosines ``sent`` and chunk cosines ``cos`` (the
    training side, eval/relevance/scoring.py, calls this too)."""
    sent = np.asarray(sent, dtype=np.float64)
    return {"sent": sent, "d_sent": sent - sent.max(), "gap_sent": gap(sent), "rank_sent": _rank(sent),
            "sent_gain": sent - np.asarray(cos, dtype=np.float64)}


@dataclass(frozen=True)
class Calibrator:
    """Score -> P(relevant): isotonic (piecewise-linear through ``x``/``y``) or Platt (sigmoid(a·s + b))."""

    kind: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.kind == "isotonic":
            return np.clip(np.interp(s, self.x, self.y), 0.0, 1.0)
        return 1.0 / (1.0 + np.exp(-(self.a * s + self.b)))

    @classmethod
    def from_json(cls, d: dict) -> Calibrator:
        """From ``stage.json``'s ``calibration`` object."""
        if d["kind"] not in ("isotonic", "platt"):
            raise ValueError(f"unknown calibration {d['kind']!r}")
        return cls(d["kind"], tuple(d.get("x") or ()), tuple(d.get("y") or ()), float(d.get("a", 1.0)),
                   float(d.get("b", 0.0)))


#: Optional libraries that ``import lightgbm`` loads only for its scikit-learn / DataFrame interfaces: about 1.7 s and
#: 170 MB for pandas + scikit-learn, which a search never uses (it only predicts with a ``Booster`` over numpy).
_LIGHTGBM_EXTRAS = ("pandas", "sklearn", "dask", "datatable", "pyarrow", "matplotlib", "graphviz")


def _lightgbm():
    """``lightgbm``, imported without its optional extras when they are not loaded yet (import 2.1 s -> 0.4 s here).

    They are hidden from this one import only (lightgbm's ``compat`` then notes them as absent, which only its
    scikit-learn and pandas interfaces read) and are importable again right after; a process that imported them or
    lightgbm before (training) is left as it is."""
    import sys

    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    hidden = [m for m in _LIGHTGBM_EXTRAS if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]  (import of a None entry raises ImportError)
    try:
        import lightgbm
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return lightgbm


class RelevanceStage:
    """The stage named by ``relevance/stage.json``: ``{"model": "lgbm", "lgbm": FILE, "features": [...],
    "calibration": {...}, "threshold": P, "trained_for": MODEL}`` (``"model": "linear"`` with ``"weights"`` over the
    features is the small form the tests use)."""

    def __init__(self, spec: dict, folder: Path):
        self.spec, self.folder = spec, Path(folder)
        self.kind = spec["model"]
        self.names = tuple(spec.get("features") or FEATURES)
        unknown = set(self.names) - set(ALL_FEATURES)
        if unknown:
            raise ValueError(f"{folder / STAGE_FILE}: unknown features {sorted(unknown)}")
        #: the stage reads each candidate's best sentence cosine, from the sentence vectors of the index's chunks that
        #: the build put in the stage's folder (``index.sentences``; None until then, e.g. in the shipped folder)
        self.needs_sentences = bool(set(self.names) & set(SENTENCE_FEATURES))
        self.sentences = None
        if self.needs_sentences and (self.folder / SENTENCE_VECTORS).is_file():
            from index.sentences import SentenceVectors

            self.sentences = SentenceVectors(np.load(self.folder / SENTENCE_VECTORS, mmap_mode="r", allow_pickle=False),
                                             np.load(self.folder / SENTENCE_STARTS, allow_pickle=False))
        self.threshold = float(spec["threshold"])
        self.calibrator = Calibrator.from_json(spec["calibration"])
        self.top_n = int(spec.get("top_n", TOP_N))
        self.trained_for = spec.get("trained_for")
        self._booster = None
        self._lock = threading.Lock()
        if self.kind == "lgbm":
            if not (self.folder / spec["lgbm"]).is_file():
                raise ValueError(f"{folder / STAGE_FILE}: model file {spec['lgbm']!r} is missing")
        elif self.kind == "linear":
            self._weights = np.asarray(spec["weights"], dtype=np.float64)
            self._bias = float(spec.get("bias", 0.0))
        else:
            raise ValueError(f"{folder / STAGE_FILE}: unknown model kind {self.kind!r}")

    @classmethod
    def load(cls, folder: Path) -> RelevanceStage:
        """Read ``folder/stage.json`` and the files it names."""
        folder = Path(folder)
        return cls(json.loads((folder / STAGE_FILE).read_text(encoding="utf-8")), folder)

    def files(self) -> list[str]:
        """The files of this stage as shipped (relative to its folder), ``stage.json`` first (an index's copy of a
        stage with sentence features also holds ``SENTENCE_VECTORS`` and ``SENTENCE_STARTS``)."""
        return [STAGE_FILE, *([self.spec["lgbm"]] if self.kind == "lgbm" else [])]

    def raw_scores(self, ev: Evidence) -> np.ndarray:
        """Uncalibrated scores, higher = more relevant."""
        x = features(ev, self.names)
        if not len(x):
            return np.zeros(0)
        if self.kind == "lgbm":
            return np.asarray(self._lgbm().predict(x, raw_score=True, num_threads=1), dtype=np.float64)
        return x @ self._weights + self._bias

    def _lgbm(self):
        """The LightGBM booster, loaded at the first judgement (``--fast`` never pays for it)."""
        if self._booster is None:
            with self._lock:
                if self._booster is None:
                    self._booster = _lightgbm().Booster(model_file=str(self.folder / self.spec["lgbm"]))
        return self._booster

    def warm_up(self) -> None:
        """Load the model now (``policyqa serve`` calls it before it listens)."""
        if self.kind == "lgbm":
            self._lgbm()

    def judge(self, ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores, calibrated P(relevant)) of each candidate."""
        raw = self.raw_scores(ev)
        return raw, self.calibrator(raw)

    def mark(self, hits, raw: np.ndarray, prob: np.ndarray) -> list:
        """The hits best first (probability, then raw score, then their order), with relevance and confident set."""
        order = np.lexsort((np.arange(len(hits)), -np.asarray(raw), -np.asarray(prob)))
        return [replace(hits[i], relevance=float(prob[i]), confident=bool(prob[i] >= self.threshold)) for i in order]

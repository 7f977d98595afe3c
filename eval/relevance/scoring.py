"""Relevance stage for one (question, candidates) call: features, LightGBM score, cross-encoder score, calibration.

Inference only (numpy, lightgbm's Booster, onnxruntime, tokenizers): no torch, no training imports, so this module can
move into ``index/`` as it is.  Training lives in ``train_ranker.py`` / ``train_reranker.py`` / ``calibrate.py``.

    from eval.relevance.scoring import RelevanceStage
    stage = RelevanceStage.load("data/relevance")               # the artefacts the training commands wrote
    resp = searcher.with_settings(abstain=False).query(q, 30)   # hybrid top-30
    ranked = stage.rerank(searcher, q, resp.hits)               # [(hit, P(relevant))], best first

A candidate's raw signals (``gather``) come from the searcher that produced it: its BM25 score (bm25s, the index's own
tokenizer), its dense cosine (backed out of the fused score: fused = w_dense*cos + w_bm25*s/(s+half), so the query is
not encoded twice), its IDF-weighted query-token coverage, and title / heading / text overlaps.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Sentence-level features (index/sentences.py), defined once beside the product's features; trained only with
#: ``train_relevance --sentences``; a stage that lists none of them never needs sentence vectors.
from index.relevance import SENTENCE_FEATURES

#: Candidates the stage looks at (hybrid top-N).
TOP_N = 30
_CJK = re.compile("[\u3400-\u9fff]")


@dataclass
class Signals:
    """Raw per-candidate evidence for one question (arrays in the searcher's order, best fused first)."""

    query: str
    fused: np.ndarray
    cos: np.ndarray
    bm25: np.ndarray
    coverage: np.ndarray  # IDF-weighted share of query tokens in the chunk (LexicalIndex.coverage)
    title_cov: np.ndarray  # same weights, tokens found in the document title
    path_cov: np.ndarray  # … in the heading path
    bigram: np.ndarray  # share of the query's CJK character bigrams found in title+path+text
    text_len: np.ndarray
    same_doc: np.ndarray  # how many of the candidates come from this candidate's document
    doc_first_rank: np.ndarray  # fused rank of the best candidate of the same document
    piece: np.ndarray  # 1 when the chunk is a piece of a longer provision
    q_tokens: int
    q_chars: int
    q_unknown: float  # IDF share of query tokens the index has never seen
    cjk: int
    q_quantity: float | None = None  # index.answer_types: the question asks for a quantity or date
    num: np.ndarray | None = None  # … each candidate states one (None in caches written before: add_answer_types)
    sent: np.ndarray | None = None  # best sentence's cosine to the question (eval/relevance/sentences.py; None before)
    best_sentences: tuple[str, ...] | None = None  # and that sentence, per candidate (for a sentence cross-encoder)


def _bigrams(text: str) -> set[str]:
    t = "".join(ch for ch in text if _CJK.match(ch))
    return {t[i:i + 2] for i in range(len(t) - 1)}


def gather(searcher, query: str, hits) -> Signals:
    """Raw signals of ``hits`` (from ``searcher.query(query, …)``, hybrid, weighted fusion) for ``query``."""
    from index.fuse import saturate
    from index.normalize import MAX_QUERY_CHARS, clean_query
    from index.answer_types import answer_types
    from index.relevance import lexical_question

    text = clean_query(query, MAX_QUERY_CHARS).text
    ix = searcher._ix
    lexical = ix.lexical
    rows = np.asarray([searcher._row_of[h.chunk_id] for h in hits], dtype=np.int64)
    bm25_all = lexical.scores(text)
    concepts = searcher.translation(text)
    if concepts:
        bm25_all = bm25_all + lexical.concept_scores([c.terms for c in concepts])
    bm25 = np.asarray(bm25_all[rows], dtype=np.float64) if len(rows) else np.zeros(0)
    fused = np.asarray([h.score for h in hits], dtype=np.float64)
    s = searcher.settings
    w_dense, w_bm25 = searcher._fusion_weights()
    if s.fusion == "weighted" and w_dense > 0:
        cos = (fused - w_bm25 * saturate(bm25, s.bm25_half)) / w_dense
    else:  # rrf: the cosine has to be computed
        from index.dense import exact_scores

        cos = np.asarray(exact_scores(ix.vectors, searcher.query_vector(text), rows), dtype=np.float64)
    text = lexical_question(text, concepts)  # as the product
    cov = lexical.coverage(text, rows) if len(rows) else np.zeros(0)
    idf, unknown, n_tokens = lexical.idf_split(text)
    total = sum(idf.values()) or 1.0
    title_cov, path_cov, big, tlen = [], [], [], []
    qb = _bigrams(text)
    for h in hits:
        title, path = h.title or "", " ".join(h.path)
        title_cov.append(sum(w for t, w in idf.items() if t in title) / total)
        path_cov.append(sum(w for t, w in idf.items() if t in path) / total)
        whole = f"{title} {path} {h.text}"
        big.append(sum(b in whole for b in qb) / len(qb) if qb else 0.0)
        tlen.append(len(h.text))
    asks, states = answer_types(text, [h.text for h in hits])
    docs = [h.doc_id for h in hits]
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, d in enumerate(docs):
        count[d] = count.get(d, 0) + 1
        first.setdefault(d, i)
    return Signals(
        query=text, fused=fused, cos=np.asarray(cos, dtype=np.float64), bm25=bm25, coverage=np.asarray(cov),
        title_cov=np.asarray(title_cov), path_cov=np.asarray(path_cov), bigram=np.asarray(big),
        text_len=np.asarray(tlen, dtype=np.float64), same_doc=np.asarray([count[d] for d in docs], dtype=np.float64),
        doc_first_rank=np.asarray([first[d] for d in docs], dtype=np.float64),
        piece=np.asarray(["~" in h.chunk_id for h in hits], dtype=np.float64),
        q_tokens=n_tokens, q_chars=len(text), q_unknown=unknown / (sum(idf.values()) + unknown or 1.0),
        cjk=int(bool(_CJK.search(text))), q_quantity=asks, num=states)


FEATURES = (
    "fused", "cos", "bm25", "bm25_sat", "coverage", "title_cov", "path_cov", "bigram", "log_len", "rank",
    "rank_cos", "rank_bm25", "d_fused", "d_cos", "r_bm25", "d_cov", "top_fused", "top_cos", "max_cov5", "same_doc",
    "doc_first_rank", "piece", "q_tokens", "q_chars", "q_unknown", "cjk", "gap_fused", "gap_cos",
    "q_quantity", "num", "num_missing",
)


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(-x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    return r


def features(sig: Signals, names=FEATURES) -> np.ndarray:
    """The feature matrix (candidates x ``names``: FEATURES by default, or any of them and SENTENCE_FEATURES)."""
    from index.relevance import gap, sentence_columns

    if sig.num is None:
        raise ValueError("candidates cached before the answer-type features: eval.relevance.candidates.add_answer_types")

    n = len(sig.fused)
    if n == 0:
        return np.zeros((0, len(names)))
    top_f, top_c = sig.fused.max(), sig.cos.max()
    cols = {
        "fused": sig.fused, "cos": sig.cos, "bm25": sig.bm25, "bm25_sat": sig.bm25 / (sig.bm25 + 10.0),
        "coverage": sig.coverage, "title_cov": sig.title_cov, "path_cov": sig.path_cov, "bigram": sig.bigram,
        "log_len": np.log1p(sig.text_len), "rank": np.arange(n, dtype=np.float64), "rank_cos": _rank(sig.cos),
        "rank_bm25": _rank(sig.bm25), "d_fused": sig.fused - top_f, "d_cos": sig.cos - top_c,
        "r_bm25": sig.bm25 / (sig.bm25.max() or 1.0), "d_cov": sig.coverage - sig.coverage.max(),
        "top_fused": np.full(n, top_f), "top_cos": np.full(n, top_c), "max_cov5": np.full(n, sig.coverage[:5].max()),
        "same_doc": sig.same_doc, "doc_first_rank": sig.doc_first_rank, "piece": sig.piece,
        "q_tokens": np.full(n, sig.q_tokens, dtype=np.float64), "q_chars": np.full(n, sig.q_chars, dtype=np.float64),
        "q_unknown": np.full(n, sig.q_unknown), "cjk": np.full(n, sig.cjk, dtype=np.float64),
        "gap_fused": gap(sig.fused), "gap_cos": gap(sig.cos),
        "q_quantity": np.full(n, sig.q_quantity), "num": sig.num, "num_missing": sig.q_quantity * (1.0 - sig.num),
    }
    if set(names) & set(SENTENCE_FEATURES):
        if sig.sent is None:
            raise ValueError("sentence features asked of candidates without sentence cosines: "
                             "eval.relevance.sentences.add_sentence_cosines")
        cols |= sentence_columns(sig.sent, sig.cos)
    return np.stack([np.asarray(cols[f], dtype=np.float64) for f in names], axis=1)


# ---------------------------------------------------------------------------------------------------- calibration
@dataclass
class Calibrator:
    """Score -> P(relevant): isotonic (piecewise-linear through ``x``/``y``) or Platt (sigmoid(a*s + b))."""

    kind: str
    x: list[float] | None = None
    y: list[float] | None = None
    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5  # P(relevant) at or above which a hit counts as "confident"

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.kind == "isotonic":
            return np.interp(s, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.a * s + self.b)))

    def to_json(self) -> dict:
        return {"kind": self.kind, "x": self.x, "y": self.y, "a": self.a, "b": self.b, "threshold": self.threshold}

    @classmethod
    def from_json(cls, d: dict) -> Calibrator:
        return cls(d["kind"], d.get("x"), d.get("y"), d.get("a", 1.0), d.get("b", 0.0), d.get("threshold", 0.5))


# ---------------------------------------------------------------------------------------------------- cross-encoder
#: e5's own prompts, kept on the two sides of a cross-encoder pair.
CE_QUERY, CE_PASSAGE = "query: ", "passage: "


def pair_text(hit) -> str:
    """The passage side of a cross-encoder pair: title, heading path and text."""
    head = " › ".join([hit.title or "", *hit.path]).strip(" ›")
    return f"{head}\n{hit.text}" if head else hit.text


class OnnxCrossEncoder:
    """A cross-encoder exported to ONNX (input_ids, attention_mask[, token_type_ids] -> logits), tokenizers' fast
    tokenizer, pairs truncated to ``max_length`` tokens (the longer side first, as in training)."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int = 128, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tok = Tokenizer.from_file(str(tokenizer_path))
        self.tok.enable_truncation(max_length=max_length, strategy="longest_first")  # as training (a long question too)
        self.tok.no_padding()
        self.max_length = max_length

    def logits(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0)
        enc = self.tok.encode_batch([(query, p) for p in passages])
        width = max(len(e.ids) for e in enc)
        ids = np.full((len(enc), width), 1, dtype=np.int64)  # XLM-R pad id
        mask = np.zeros((len(enc), width), dtype=np.int64)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------------------------------------------- the stage
class RelevanceStage:
    """Loads what ``data/relevance/stage.json`` names: the scorer kind, a LightGBM model over ``FEATURES``, an ONNX
    cross-encoder (and how many candidates it scores), and the calibrator of the final score."""

    def __init__(self, spec: dict, root: Path, threads: int = 1):
        self.spec, self.root = spec, root
        self.kind = spec["score"]  # "lgbm" | "ce" | "lgbm+ce" | "fused"
        self.names = tuple(spec.get("features") or FEATURES)  # the LightGBM model's columns
        self.needs_sentences = bool(set(self.names) & set(SENTENCE_FEATURES))
        self.booster = None
        if spec.get("lgbm"):
            import lightgbm as lgb

            self.booster = lgb.Booster(model_file=str(root / spec["lgbm"]))
        self.ce = None
        self.ce_top = int(spec.get("ce_top", TOP_N))
        if spec.get("ce"):
            ce = spec["ce"]
            self.ce = OnnxCrossEncoder(root / ce["onnx"], root / ce["tokenizer"], ce.get("max_length", 128), threads)
        self.calibrator = Calibrator.from_json(spec["calibration"]) if spec.get("calibration") else None

    @classmethod
    def load(cls, root: Path | str = "data/relevance", name: str = "stage.json", threads: int = 1) -> RelevanceStage:
        root = Path(root)
        return cls(json.loads((root / name).read_text(encoding="utf-8")), root, threads)

    def raw_scores(self, sig: Signals, hits) -> np.ndarray:
        """The stage's uncalibrated score of every candidate (higher = more relevant).

        "fused": the hybrid score; "lgbm": LightGBM over ``features``; "ce": the cross-encoder logit over the hybrid
        top ``ce_top`` (the rest below them, in hybrid order); "lgbm+ce": LightGBM + ``w`` * cross-encoder logit over
        LightGBM's top ``ce_top`` (the rest get the worst scored candidate's logit, so stay below in LightGBM order).
        """
        n = len(hits)
        if self.kind == "fused":
            return np.asarray(sig.fused, dtype=np.float64)
        if self.kind == "ce":
            k = min(self.ce_top, n)
            out = -50.0 - np.arange(n, dtype=np.float64)
            out[:k] = self._ce(sig, [hits[i] for i in range(k)])
            return out
        lg = np.asarray(self.booster.predict(features(sig, self.names), raw_score=True, num_threads=1), dtype=np.float64)
        if self.kind == "lgbm":
            return lg
        top = np.argsort(-lg, kind="stable")[:self.ce_top]
        logits = self._ce(sig, [hits[i] for i in top])
        filled = np.full(n, float(logits.min()))
        filled[top] = logits
        return lg + float(self.spec.get("w", 1.0)) * filled

    def _ce(self, sig: Signals, hits) -> np.ndarray:
        return self.ce.logits(CE_QUERY + sig.query, [CE_PASSAGE + pair_text(h) for h in hits])

    def rerank(self, searcher, query: str, hits) -> list[tuple[object, float]]:
        """(hit, P(relevant)) best first, for hits from ``searcher`` (hybrid top-N, abstention off)."""
        hits = list(hits)[:TOP_N]
        if not hits:
            return []
        sig = gather(searcher, query, hits)
        raw = self.raw_scores(sig, hits)
        prob = self.calibrator(raw) if self.calibrator else raw
        order = np.argsort(-raw, kind="stable")
        return [(hits[i], float(prob[i])) for i in order]

    def confident(self, p: float) -> bool:
        return self.calibrator is not None and p >= self.calibrator.threshold


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


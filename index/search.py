"""Hybrid search over a built index: dense + BM25 candidates, fusion, filters, dedupe, cited hits."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.backend import Scope, SearchBackend
from index.fuse import fuse
from index.judge import Judging, Ranked
from index.normalize import MAX_QUERY_CHARS, clean_query, fold, to_simplified
from index.query_terms import CJK as _CJK
from index.query_terms import ENGLISH_NOTE, NOTE_WORDS, concepts_of, translation_note  # noqa: F401 (re-exported)
from index.query_terms import notes as query_notes
from index.query_terms import official_text as _official_text
from index.query_terms import words as _words
from index.relevance import RelevanceStage
from index.request import (  # noqa: F401  (MODES and the reasons are re-exported for callers of index.search)
    MODES, REASON_EMPTY, REASON_FILTERED, REASON_NO_ANSWER, REASON_NOTHING, REASON_WEAK, SearchRequest,
    SearchResponse)
from index.store import IndexManifest, LoadedIndex, QuerySettings, check_embedder, load_index
from index.types import Chunk, Document, Hit, Provision

if TYPE_CHECKING:  # only the protocol type; the model code is imported when an embedder is built
    from index.embed import Embedder
    from index.translate import Concept


class Searcher(Judging):
    """Searches one index; build it with ``Searcher.load(index_dir)``."""

    def __init__(self, loaded: LoadedIndex, embedder: Embedder):
        self._ix = loaded
        self.embedder = embedder
        self.settings: QuerySettings = loaded.settings  # may differ from the manifest's (``with_settings``)
        self.min_score: float | None = loaded.settings.min_score
        self._provisions: dict[str, Provision] = {
            p.id: p for d in loaded.documents.values() for p in d.provisions}
        chunks = loaded.chunks
        self._doc_ids = sorted(loaded.documents)
        self._backend: SearchBackend = loaded.backend
        code = {d: i for i, d in enumerate(self._doc_ids)}
        self._chunk_doc = np.fromiter((code[c.doc_id] for c in chunks), dtype=np.int64, count=len(chunks))
        self._n_provisions = len({c.provision_id for c in chunks})
        self._row_of = {c.id: i for i, c in enumerate(chunks)}

    @classmethod
    def load(cls, index_dir: Path | str, embedder: Embedder | None = None) -> Searcher:
        """Open the index at ``index_dir`` (or ``milvus://host:port/collection``); the embedder is rebuilt from the
        manifest when not given."""
        from index.config import index_target

        index_dir = index_target(index_dir)[0]  # milvus://host:port/collection: the local folder beside it
        loaded = load_index(index_dir, embedder)
        if embedder is None:
            from index.embed import load_embedder

            embedder = load_embedder(loaded.manifest.build.model.name)
            check_embedder(loaded.manifest, embedder, index_dir)
        return cls(loaded, embedder)

    @property
    def documents(self) -> dict[str, Document]:
        """The indexed documents by id."""
        return self._ix.documents

    @property
    def manifest(self) -> IndexManifest:
        """The index manifest: its build section (model, settings, corpus hash, counts…) and query section."""
        return self._ix.manifest

    @property
    def chunks(self) -> list[Chunk]:
        """The indexed chunks, in row order."""
        return self._ix.chunks

    def search(self, query: str, k: int = 10, **options) -> list[Hit]:
        """The top ``k`` hits for ``query`` (see ``query`` for the options)."""
        return list(self.query(query, k, **options).hits)

    def query(self, query: str | SearchRequest, k: int = 10, *, mode: str = "hybrid", doc: str | None = None,
              region: str | None = None, issuer: str | None = None, year: int | None = None) -> SearchResponse:
        """Search with ``mode`` ("hybrid" | "dense" | "bm25") among documents matching the filters.

        ``query`` is the question, or a ``SearchRequest`` (then the other arguments are ignored); raw values are
        validated by ``SearchRequest.parse`` (a ``RequestError``, which is a ValueError, names the bad field)."""
        request = query if isinstance(query, SearchRequest) else SearchRequest.parse(
            query, k, mode, doc, region, issuer, year)
        return self.run(request)

    def run(self, request: SearchRequest) -> SearchResponse:
        """Answer one validated request."""
        mode, k = request.mode, request.k
        cq = clean_query(request.query, MAX_QUERY_CHARS)
        if not cq.text:
            return SearchResponse((), cq.warnings, REASON_EMPTY, query=request.query)
        mask = self._filter_mask(request.doc, request.region, request.issuer, request.year)
        if mask is not None and not mask.mask.any():
            return SearchResponse((), cq.warnings, REASON_FILTERED, query=request.query)
        if not self._ix.chunks:
            return SearchResponse((), cq.warnings, REASON_NOTHING, query=request.query)
        k = min(k, self._n_provisions)  # a huge k is capped at what exists
        concepts = self.translation(cq.text)
        if mode == "dense" and not self.settings.translate_dense:
            concepts = ()
        stage = self.relevance_stage() if mode == "hybrid" else None
        want = max(k, stage.top_n) if stage else k
        ranked = self._rank(cq.text, mode, max(self.settings.candidates, 3 * want), mask, concepts)
        threshold = self.min_score if mode == "hybrid" and stage is None else None
        hits, at = self._hits(ranked.rows, ranked.scores, want, threshold)
        terms = _words(concepts)
        notes = query_notes(cq.text, concepts)
        if stage is not None:  # the relevance stage judges, orders and marks the hits; the heuristic below is off
            hits = self._judged(stage, cq.text, hits, ranked, at, concepts, mask)[:k]
            reason = None if any(h.confident for h in hits) else REASON_NO_ANSWER if hits else REASON_NOTHING
            return SearchResponse(tuple(hits), cq.warnings, reason, notes, terms, request.query)
        if hits and mode == "hybrid" and self._weak(cq.text, ranked.top_cos, [h.chunk_id for h in hits[:5]]):
            return SearchResponse((), cq.warnings, REASON_WEAK, notes, terms, request.query)
        return SearchResponse(tuple(hits), cq.warnings, None if hits else REASON_NOTHING, notes, terms, request.query)

    def relevance_stage(self) -> RelevanceStage | None:
        """The index's relevance stage (named in its manifest), unless switched off (``relevance=False``)."""
        return self._ix.relevance if self.settings.relevance else None

    def abstain_thresholds(self) -> dict | None:
        """The abstention thresholds in effect (the manifest's, recorded from the model that built the index), or None
        when the searcher never abstains."""
        if not self.settings.abstain:
            return None
        return self._ix.manifest.query.abstain

    def _weak(self, text: str, top_cos: float | None, chunk_ids: list[str]) -> bool:
        """True when the evidence for the top hits is too weak to show them: a Chinese query whose best dense cosine
        is below ``cos`` AND no top-5 hit contains ``cover`` of its IDF-weighted words (``abstain_thresholds``)."""
        limits = self.abstain_thresholds()
        if limits is None or top_cos is None or top_cos >= limits["cos"] or not _CJK.search(text):
            return False
        rows = np.asarray([self._row_of[c] for c in chunk_ids], dtype=np.int64)
        return float(self._ix.lexical.coverage(text, rows).max(initial=0.0)) < limits["cover"]

    def _filter_mask(self, doc, region, issuer, year) -> Scope | None:
        # Filters select documents; the mask is over chunk rows so both retrievers can apply it before the cut (a
        # remote backend applies the same filters itself: the Scope carries them too).
        if doc is None and region is None and issuer is None and year is None:
            return None
        region_f, issuer_f = (fold(x) if x else None for x in (region, issuer))
        allowed = [
            i for i, d in enumerate(self.documents[x] for x in self._doc_ids)
            if (doc is None or d.id == doc)
            and (region_f is None or (d.region is not None and region_f in fold(d.region)))
            and (issuer_f is None or (d.issuer is not None and issuer_f in fold(d.issuer)))
            and (year is None or d.year == int(year))]
        mask = np.isin(self._chunk_doc, np.asarray(allowed, dtype=np.int64))  # vectorised: 150k chunks in ~1 ms
        return Scope(mask, doc, region_f, issuer_f, None if year is None else int(year))

    def _rank(self, text: str, mode: str, n: int, mask: Scope | None, concepts: tuple[Concept, ...] = ()
              ) -> Ranked:
        """Candidate rows and their scores (cosine, BM25 or fused), best first, with each one's cosine and BM25 score;
        and the best cosine (None: no dense).

        ``concepts``: the dictionary translation of an English query (``translation``), matched by BM25 and, with
        ``translate_dense``, appended to the dense query."""
        s = self.settings
        qvec = None
        dense_rows = np.zeros(0, np.int64)
        if mode in ("dense", "hybrid"):
            dense_text = to_simplified(text) if s.dense_t2s else text
            if concepts and s.translate_dense:
                dense_text += " " + " ".join(_words(concepts))
            plain, qvec = self._dense_query(dense_text, concepts)
            dense_rows = self._dense_candidates(qvec, n, mask)
        bm25_all = None
        bm25_rows = np.zeros(0, np.int64)
        if mode in ("bm25", "hybrid"):
            bm25_all = self._backend.lexical(text, [c.terms for c in concepts], mask)
            bm25_rows = bm25_all.top(n)
        if mode == "bm25":
            at = bm25_all.at(bm25_rows)
            return Ranked(bm25_rows, at, None, None, at)
        rows = np.union1d(dense_rows, bm25_rows) if mode == "hybrid" else dense_rows
        cos = self._backend.cosines(qvec, rows)
        bm25_at = bm25_all.at(rows) if bm25_all is not None else None
        w_dense, w_bm25 = self._fusion_weights()
        scores = cos if mode == "dense" else fuse(cos, bm25_at, s.fusion, w_dense, w_bm25, s.rrf_k,
                                                  s.bm25_half)
        order = np.lexsort((rows, -scores))  # score desc, then row: deterministic ties
        bm25 = bm25_at[order] if bm25_at is not None else np.zeros(len(rows))
        return Ranked(rows[order], np.asarray(scores)[order], self._best_plain_cosine(plain, qvec, cos, mask),
                      np.asarray(cos)[order], bm25, plain)

    def warm_up(self) -> None:
        """Load now what a server's first queries would otherwise wait for: the query encoder, and the English
        dictionary when translation can apply (~0.6 s from its cache)."""
        warm = getattr(self.embedder, "warm_up", None)
        if callable(warm):
            warm()
        if self.settings.translate and self._ix.chunks:
            from index.translate import QueryTranslator

            QueryTranslator.default()
        if self._ix.relevance is not None:
            self._ix.relevance.warm_up()

    def translation(self, text: str) -> tuple[Concept, ...]:
        """The extra BM25 concepts of a query (empty when switched off): for a query without Chinese characters, its
        CC-CEDICT translation (``index.translate``); for a Chinese one, the official words of its everyday words
        (``index.everyday``: 外地 -> 异地)."""
        if not self.settings.translate or not self._ix.chunks:
            return ()
        return concepts_of(text, self._ix.lexical)

    def _best_plain_cosine(self, plain: np.ndarray, qvec: np.ndarray, cos: np.ndarray, mask) -> float | None:
        # Abstention thresholds are calibrated on the model's own cosines: with an adapter, look the best one up
        # with the unadapted query vector (one more top-1 search) rather than using the adapted scale.
        if plain is qvec:
            return float(np.max(cos)) if len(cos) else None
        top = self._dense_candidates(plain, 1, mask)
        return float(self._backend.cosines(plain, top).max()) if len(top) else None

    def _fusion_weights(self) -> tuple[float, float]:
        """(w_dense, w_bm25): the index's, or those tuned with the corpus's query adapter when it applies."""
        tuned = self._ix.manifest.query.adapter_fusion if self._adapter_on() else None
        if tuned:
            return float(tuned["w_dense"]), float(tuned["w_bm25"])
        return self.settings.w_dense, self.settings.w_bm25

    def query_vector(self, text: str) -> np.ndarray:
        """The dense query vector of ``text``: the embedder's, through the model's query adapter when one applies."""
        return self._query_vectors(text)[1]

    def _query_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(the embedder's vector, the vector searched with): the same array unless a query adapter applies."""
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        adapt = self._ix.adapter.apply if self._adapter_on() else None
        return [(v, adapt(v) if adapt else v) for v in self.embedder.encode_queries(texts).astype(np.float32)]

    def _dense_query(self, text: str, concepts: tuple[Concept, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``_query_vectors`` of the dense query; with ``everyday_dense``, a Chinese question that has everyday words
        is read both as written and in the documents' words (去外地住院 -> 去异地住院) and searched with the mean of
        the two vectors: the model does not read 回来能报吗 as 报销, and the question as written keeps what the
        rewrite loses (a word the table maps badly).  One more query encoding, for those questions only."""
        official = _official_text(text, concepts) if self.settings.everyday_dense else None
        if official is None:
            return self._query_vectors(text)
        (plain, qvec), (plain2, qvec2) = self._encode([text, official])  # one batch: cheaper than two calls
        mean = (qvec + qvec2) / np.linalg.norm(qvec + qvec2)
        return (mean, mean) if plain is qvec else ((plain + plain2) / np.linalg.norm(plain + plain2), mean)

    def _adapter_on(self) -> bool:
        """Whether the index's query adapter (attached by ``policyqa tune``) applies to this searcher's queries."""
        return self._ix.adapter is not None and self.settings.query_adapter

    def _dense_candidates(self, qvec: np.ndarray, n: int, mask: Scope | None) -> np.ndarray:
        return self._backend.dense_candidates(qvec, n, mask, self.settings.candidates)

    def _hits(self, rows: np.ndarray, scores: np.ndarray, k: int, threshold: float | None
              ) -> tuple[list[Hit], list[int]]:
        """Up to ``k`` hits, one per provision, in candidate order; and each one's position among the candidates."""
        hits: list[Hit] = []
        at: list[int] = []
        seen_prov: set[str] = set()
        seen_text: set[str] = set()
        for i, (row, score) in enumerate(zip(rows.tolist(), np.asarray(scores).tolist())):
            if threshold is not None and score < threshold:
                break  # rows are sorted: everything after is below too
            chunk = self._ix.chunks[row]
            if chunk.provision_id in seen_prov:
                continue  # one hit per provision: its best chunk
            doc = self.documents[chunk.doc_id]
            prov = self._provisions.get(chunk.provision_id)
            key = self._dedupe_key(doc, prov.text if prov else chunk.text)
            if key in seen_text:
                continue  # the same provision in another rendering of the document
            seen_prov.add(chunk.provision_id)
            seen_text.add(key)
            hits.append(self._hit(doc, prov, chunk, float(score)))
            at.append(i)
            if len(hits) == k:
                break
        return hits, at

    def _dedupe_key(self, doc: Document, text: str) -> str:
        # Long identical texts are the same provision in two renderings; short ones ("本法自公布之日起施行。")
        # recur in unrelated documents, so they only merge within the same title.
        t = fold(text)
        return t if len(t) >= self.settings.dedupe_min_chars else f"{fold(doc.title)}\0{t}"

    def _hit(self, doc: Document, prov: Provision | None, chunk: Chunk, score: float) -> Hit:
        path = prov.path if prov else ()
        return Hit(
            doc_id=doc.id, provision_id=chunk.provision_id, chunk_id=chunk.id, title=doc.title,
            text=chunk.text, score=score, path=path,
            doc_number=doc.doc_number, region=doc.region, issuer=doc.issuer, date=doc.date,
            lead_units=prov.lead_units if prov else None, resp_units=prov.resp_units if prov else None,
            sources=tuple(s.path for s in doc.sources))

    def with_settings(self, **changes) -> Searcher:
        """A searcher sharing this index with some query-time settings changed (for tuning and ablations)."""
        from index.store import with_settings

        other = Searcher.__new__(Searcher)
        other.__dict__.update(self.__dict__)
        other._ix = with_settings(self._ix, **changes)
        other.settings = other._ix.settings
        other.min_score = changes.get("min_score", self.min_score)
        return other


"""How an index is built (BuildSettings) and how it is searched (QuerySettings): two records, two manifest sections."""
from __future__ import annotations

from dataclasses import dataclass, fields

from index.dense import DEFAULT_HNSW_THRESHOLD


@dataclass(frozen=True)
class BuildSettings:
    """Settings baked into the index files; changing one rebuilds the index (unchanged chunks keep their vectors)."""

    chunk_max_tokens: int = 512  # capped at the embedder's max_tokens
    chunk_overlap: int = 32  # tokens shared by consecutive pieces of a split provision
    embed_context: bool = True  # title + heading path in the embedded text
    lexical_context: bool = True  # title + heading path in the BM25 text too
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD  # exact FAISS search below this many chunks, HNSW above
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128


@dataclass(frozen=True)
class QuerySettings:
    """Settings read at search time only; changing one never rebuilds (``Searcher.with_settings``)."""

    fusion: str = "weighted"  # "weighted" (w_dense*cos + w_bm25*s/(s+half)) or "rrf"
    w_dense: float = 0.7
    w_bm25: float = 0.3
    rrf_k: float = 60.0
    bm25_half: float = 10.0  # BM25 score that maps to 0.5 in weighted fusion
    candidates: int = 100  # per retriever, before fusion and dedupe
    dense_t2s: bool = True  # the dense query is converted to simplified too (the corpus is simplified)
    min_score: float | None = None  # hybrid score under which a hit is "not relevant"; None = off
    abstain: bool = True  # hybrid without a relevance stage: answer "nothing relevant" on weak evidence (manifest)
    relevance: bool = True  # hybrid: the index's relevance stage judges and orders the hits (False: the fast path)
    query_adapter: bool = True  # apply the index's query adapter when the manifest names one (policyqa tune)
    translate: bool = True  # a query without Chinese: its words looked up in CC-CEDICT for BM25 (index/translate.py)
    translate_dense: bool = False  # ... and those words appended to the dense query too (dev: no gain; QUALITY.md)
    everyday_dense: bool = True  # a Chinese query with everyday words: the dense query is the mean of its vector and
    # that of the question in the documents' words (外地 -> 异地; Searcher._dense_query, QUALITY.md session 15)
    dedupe_min_chars: int = 40  # identical texts at least this long count as one provision across documents


BUILD_FIELDS = frozenset(f.name for f in fields(BuildSettings))
QUERY_FIELDS = frozenset(f.name for f in fields(QuerySettings))


@dataclass(frozen=True)
class IndexSettings:
    """Both sections together, as ``build_index`` takes them; ``IndexSettings.of(w_dense=0.5, hnsw_threshold=5)``
    routes each keyword to its section by field name."""

    build: BuildSettings = BuildSettings()
    query: QuerySettings = QuerySettings()

    @classmethod
    def of(cls, **values) -> IndexSettings:
        """Settings from flat keywords; an unknown name is a ValueError naming it."""
        unknown = sorted(set(values) - BUILD_FIELDS - QUERY_FIELDS)
        if unknown:
            raise ValueError(f"unknown index setting(s) {unknown}")
        return cls(BuildSettings(**{k: v for k, v in values.items() if k in BUILD_FIELDS}),
                   QuerySettings(**{k: v for k, v in values.items() if k in QUERY_FIELDS}))


def section_from_dict(cls, d: dict | None):
    """A settings record from a manifest's dict; unknown keys are ignored so that older manifests still load."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (d or {}).items() if k in names})

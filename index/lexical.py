"""BM25 (bm25s) over jieba tokens; the tokenizer's dictionary is saved beside the BM25 arrays."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from index.tokenize import ChineseTokenizer


class LexicalIndex:
    """A bm25s index plus the ``ChineseTokenizer`` that produced its tokens (queries must use the same one)."""

    def __init__(self, bm25: bm25s.BM25, tokenizer: ChineseTokenizer, size: int):
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.size = size

    @classmethod
    def build(
        cls, texts: Sequence[str], tokenizer: ChineseTokenizer, k1: float = 1.2, b: float = 0.75, progress: bool = False
    ) -> LexicalIndex:
        """Tokenize ``texts`` with ``tokenizer`` and index them with BM25 (Lucene variant)."""
        tokens = [tokenizer.tokenize(t) for t in _progress(texts, progress, "tokenizing")]
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if texts and not any(tokens):  # bm25s fails on an empty vocabulary ("max() arg is an empty sequence")
            raise ValueError("没有可检索的词 / the documents hold no searchable words (only stopwords, punctuation or "
                             "digits); the index is unchanged")
        if texts:
            bm25.index(tokens, show_progress=False)  # bm25s' own bars ("BM25S Create Vocab"...) are noise
        return cls(bm25, tokenizer, len(texts))

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every indexed text for ``query`` (zeros where ``mask`` is False or nothing matches)."""
        ids = self.bm25.get_tokens_ids(self.tokenizer.tokenize(query)) if self.size else []
        if not ids:
            return np.zeros(self.size, np.float32)
        weight = None if mask is None else mask.astype(np.float32)
        return self.bm25.get_scores_from_ids(ids, weight_mask=weight)

    def term_frequency(self, term: str) -> int:
        """Documents containing ``term`` (a word, tokenized like a query): 0 when the index lacks any of its tokens."""
        tokens = self.tokenizer.tokenize(term) if self.size else []
        if not tokens:
            return 0
        vocab, indptr = self.bm25.vocab_dict, self.bm25.scores["indptr"]
        if any(t not in vocab for t in tokens):
            return 0
        return min(int(indptr[vocab[t] + 1] - indptr[vocab[t]]) for t in tokens)

    def concept_scores(self, concepts: Sequence[Sequence[str]], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 of a translated query: per concept the best of its alternative words, summed over concepts.

        Alternative translations of one English concept are synonyms (Pirkola's structured query): a provision
        that says 医保 and one that says 医疗保险 get the concept's credit once, and a concept with four
        translations weighs no more than one with a single translation.
        """
        total = np.zeros(self.size, np.float32)
        for words in concepts:
            best = None
            for word in words:
                s = self.scores(word, mask)
                best = s if best is None else np.maximum(best, s)
            if best is not None:
                total += best
        return total

    def coverage(self, query: str, rows: np.ndarray) -> np.ndarray:
        """For each of ``rows``: the IDF-weighted share of the query's distinct tokens that the row contains (0..1).

        A query word absent from the whole index weighs the most (largest IDF) and is matched by no row: a question
        about something the corpus never mentions ("海南离岛免税") gets a low coverage even when its generic words match.
        """
        rows = np.asarray(rows, dtype=np.int64)
        tokens = sorted(set(self.tokenizer.tokenize(query))) if self.size else []
        if not tokens or not len(rows):
            return np.zeros(len(rows), np.float64)
        vocab, matrix = self.bm25.vocab_dict, self.bm25.scores
        indptr, indices = matrix["indptr"], matrix["indices"]
        got, total = np.zeros(len(rows), np.float64), 0.0
        for token in tokens:
            tid = vocab.get(token)
            start, end = (int(indptr[tid]), int(indptr[tid + 1])) if tid is not None else (0, 0)
            idf = float(np.log(1.0 + (self.size - (end - start) + 0.5) / ((end - start) + 0.5)))  # Lucene BM25 IDF
            total += idf
            if end > start:
                got += idf * np.isin(rows, indices[start:end])
        return got / total

    def idf_split(self, query: str) -> tuple[dict[str, float], float, int]:
        """The Lucene BM25 IDF of each distinct query token the index knows, the summed IDF of those it does not (a
        word never seen weighs the most), and the number of distinct tokens (the relevance stage's evidence)."""
        tokens = sorted(set(self.tokenizer.tokenize(query))) if self.size else []
        vocab, indptr = (self.bm25.vocab_dict, self.bm25.scores["indptr"]) if self.size else ({}, None)
        known: dict[str, float] = {}
        unknown = 0.0
        for t in tokens:
            tid = vocab.get(t)
            df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
            w = float(np.log(1.0 + (self.size - df + 0.5) / (df + 0.5)))
            if df:
                known[t] = w
            else:
                unknown += w
        return known, unknown, len(tokens)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, rows) with a positive score, best first."""
        scores = self.scores(query, mask)
        k = min(k, int((scores > 0).sum()))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        rows = np.argpartition(-scores, k - 1)[:k]
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return scores[rows], rows

    def save(self, directory: Path) -> None:
        """Write the BM25 arrays (no pickle) and the tokenizer dictionary into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.size:
            self.bm25.save(str(directory), allow_pickle=False, show_progress=False)
        self.tokenizer.save(directory)

    @classmethod
    def load(cls, directory: Path, size: int, mmap: bool = False) -> LexicalIndex:
        """Read an index written by ``save`` (``size`` = number of indexed texts, from the manifest)."""
        tokenizer = ChineseTokenizer.load(directory)
        bm25 = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False) if size else bm25s.BM25()
        return cls(bm25, tokenizer, size)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="chunk")

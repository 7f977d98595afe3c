"""What both index backends build with (the embedded folder, ``build.py``; a Milvus collection, ``milvus_store.py``):
the build report, chunk keys, the documents' JSON and corpus hash, the BM25 texts, the text files, vector assembly
from reused and new vectors, and the library versions a manifest records.  Apart from both so that neither imports
the other for them."""
from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.chunk import context_prefix
from index.store.layout import CHUNKS, DOCUMENTS
from index.store.manifest import IndexManifest
from index.types import Document

if TYPE_CHECKING:
    from index.embed import Embedder


@dataclass(frozen=True)
class BuildReport:
    """What ``build_index`` did: the manifest written, and how many chunk vectors were encoded vs reused."""

    index_dir: Path
    manifest: IndexManifest
    encoded: int
    reused: int
    unchanged: bool  # corpus and build settings identical: nothing was rebuilt
    seconds: float

    @property
    def counts(self) -> dict:
        """The manifest's counts plus what this build embedded (``embedded``) and reused (``reused``)."""
        return {**self.manifest.build.counts, "embedded": self.encoded, "reused": self.reused}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_key(embedder: Embedder, embed_text: str) -> str:
    """Content key of a chunk vector: the same model + prompt + text always gives the same vector."""
    return _sha(f"{embedder.name}\0{embedder.passage_prompt}\0{embed_text}")[:32]


def _shallow(obj) -> dict:
    return dict(obj.__dict__)  # the records are plain (non-slotted) dataclasses: __dict__ holds exactly the fields


def doc_json(doc: Document) -> str:
    """``Document.to_dict()`` as JSON, without dataclasses.asdict's deep copies (10x faster on 100k documents)."""
    d = _shallow(doc)
    d["provisions"] = [_shallow(p) for p in doc.provisions]
    d["sources"] = [_shallow(x) for x in doc.sources]
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


def corpus_hash(documents: Iterable[Document], _lines: dict[str, str] | None = None) -> str:
    """sha256 over the documents' JSON, in id order."""
    lines = _lines if _lines is not None else {d.id: doc_json(d) for d in documents}
    h = hashlib.sha256()
    for doc_id in sorted(lines):
        h.update(lines[doc_id].encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def lexical_texts(docs: list[Document], chunks, lexical_context: bool) -> list[str]:
    """What BM25 indexes for each chunk: its text, after its document title and heading path when
    ``lexical_context``."""
    by_id = {d.id: d for d in docs}
    provs = {p.id: p for d in docs for p in d.provisions}
    return [(context_prefix(by_id[c.doc_id], provs[c.provision_id]) if lexical_context else "") + c.text
            for c in chunks]


def write_texts(folder: Path, docs: list[Document], lines: dict[str, str], chunks, keys) -> None:
    """documents.jsonl (the lines serialised once for hashing) and chunks.jsonl (each with its vector key)."""
    with open(folder / DOCUMENTS, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(lines[d.id] + "\n")
    with open(folder / CHUNKS, "w", encoding="utf-8") as fh:
        for c, key in zip(chunks, keys):
            fh.write(json.dumps({**asdict(c), "key": key}, ensure_ascii=False) + "\n")


def assemble_vectors(embedder: Embedder, chunks, keys: list[str], reuse: dict, encode, progress: bool):
    """(the chunks' vectors, the positions encoded): an unchanged chunk's vector is taken from ``reuse`` (by chunk
    key), the others are encoded by ``encode`` (in process, or on a Ray cluster).  Both backends build with it."""
    todo = [i for i, key in enumerate(keys) if key not in reuse]
    vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    for i, key in enumerate(keys):
        if key in reuse:
            vectors[i] = reuse[key]
    vectors[todo] = encode(embedder, [chunks[i].embed_text for i in todo], progress)
    return vectors, todo


def versions() -> dict:
    import bm25s
    import faiss
    import jieba

    return {"python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
            "bm25s": bm25s.__version__, "jieba": jieba.__version__,
            **{n: dist_version(n) for n in ("opencc", "langchain-text-splitters")}}


def dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None

"""``manifest.json``, the one typed record of an index: what built it (build section) and how it is searched (query
section), the size and sha256 of every file, and a seal over its own content.  Read and written only here."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from index.store.errors import FIX, IndexCorruptError, IndexMismatchError, IndexNotFoundError
from index.store.settings import BuildSettings, QuerySettings, section_from_dict

#: 2: build/query sections (the index's query adapter and abstention thresholds live in it). An index of schema 1
#: is refused with the fix (`policyqa ingest` rebuilds it, re-using its vectors).
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"


def _frozen(d: Mapping | None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model the vectors were made with; a search rebuilds its query encoder from this."""

    name: str
    dim: int
    query_prompt: str = ""
    passage_prompt: str = ""
    max_tokens: int = 512
    passage_precision: str | None = None  # "bf16" | "fp32" | "mixed"


@dataclass(frozen=True)
class BuildSection:
    """How the index files were made."""

    model: ModelInfo
    settings: BuildSettings
    fingerprint: str  # model + build settings + packaged dictionaries: equal means the chunks can be reused
    corpus_sha256: str
    counts: Mapping[str, int] = field(default_factory=dict)
    tokenizer: Mapping[str, Any] = field(default_factory=dict)
    chunker: Mapping[str, Any] = field(default_factory=dict)
    dense: Mapping[str, Any] = field(default_factory=dict)
    inputs_sha256: str | None = None  # the ingest's fingerprint of the source files (only after an error-free ingest)
    built_at: str | None = None
    build_seconds: float | None = None
    embed_seconds: float | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    backend: Mapping[str, Any] | None = None  # None: embedded (FAISS + bm25s files); {"kind": "milvus", "uri", …}
    # None: this process embedded the chunks; {"kind": "ray", "address", "nodes", "cpus", "actors", "batch_size", …}
    embedded_by: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QuerySection:
    """What a search of this index uses besides its files' content; changing it never rebuilds."""

    settings: QuerySettings = QuerySettings()
    abstain: Mapping[str, float] | None = None  # {"cos", "cover"} for the model that built it, None: never abstain
    adapter: str | None = None  # a query-adapter file in the index folder (`policyqa tune`), None: none
    adapter_fusion: Mapping[str, float] | None = None  # fusion weights tuned with that adapter
    relevance: str | None = None  # the relevance stage's folder in the index (index/relevance.py), None: none


@dataclass(frozen=True)
class IndexManifest:
    """The whole manifest; ``to_json``/``from_json`` are its only (de)serialisation."""

    build: BuildSection
    query: QuerySection
    files: Mapping[str, int] = field(default_factory=dict)  # name -> size in bytes
    file_sha256: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        """The JSON object written to ``manifest.json`` (sealed)."""
        b, q = self.build, self.query
        data = {
            "schema_version": self.schema_version,
            "build": {**{k: getattr(b, k) for k in b.__dataclass_fields__ if k not in ("model", "settings")
                         and not (k in ("backend", "embedded_by") and getattr(b, k) is None)},  # as it was before
                      "model": asdict(b.model), "settings": asdict(b.settings)},
            "query": {"settings": asdict(q.settings), "abstain": q.abstain, "adapter": q.adapter,
                      "adapter_fusion": q.adapter_fusion, "relevance": q.relevance},
            "files": self.files, "file_sha256": self.file_sha256,
        }
        data = json.loads(json.dumps(data, default=dict))  # mapping proxies -> plain dicts
        return {**data, "manifest_sha256": seal_of(data)}

    @classmethod
    def from_json(cls, data: dict, where: Path | str = "") -> IndexManifest:
        """Parse a manifest's JSON; IndexMismatchError for another schema, IndexCorruptError for a broken one."""
        found = data.get("schema_version") if isinstance(data, dict) else None
        if found != SCHEMA_VERSION:
            raise IndexMismatchError(f"index at {where} has schema version {found}, this program reads "
                                     f"{SCHEMA_VERSION}; {FIX}")
        try:
            b, q = dict(data["build"]), dict(data["query"])
            model = ModelInfo(**b.pop("model"))
            settings = section_from_dict(BuildSettings, b.pop("settings"))
            for key in ("counts", "tokenizer", "chunker", "dense", "versions"):
                b[key] = _frozen(b.get(key))
            for key in ("backend", "embedded_by"):  # absent from manifests written before them
                if b.get(key) is not None:
                    b[key] = _frozen(b[key])
            build = BuildSection(model=model, settings=settings, **b)
            query = QuerySection(section_from_dict(QuerySettings, q.get("settings")),
                                 _frozen(q["abstain"]) if q.get("abstain") else None, q.get("adapter"),
                                 _frozen(q["adapter_fusion"]) if q.get("adapter_fusion") else None,
                                 q.get("relevance"))
            manifest = cls(build, query, _frozen(data["files"]), _frozen(data.get("file_sha256")), found)
            manifest.check()
            return manifest
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexCorruptError(f"{Path(where) / MANIFEST} is incomplete ({type(exc).__name__}: {exc}); "
                                    f"{FIX}") from None

    def check(self) -> None:
        """ValueError unless the parts every reader relies on are there: the file list (name -> size, non-empty),
        the digests (name -> sha256, when recorded), the counts of documents, provisions and chunks."""
        if not self.files or not all(isinstance(n, str) and type(s) is int and s >= 0 for n, s in self.files.items()):
            raise ValueError("'files' must list every index file with its size")
        if self.file_sha256 and set(self.file_sha256) != set(self.files):
            raise ValueError("'file_sha256' must give the digest of every file in 'files'")
        missing = [k for k in ("documents", "provisions", "chunks") if type(self.build.counts.get(k)) is not int]
        if missing:
            raise ValueError(f"'counts' lacks {', '.join(missing)}")
        if not isinstance(self.build.model.name, str) or type(self.build.model.dim) is not int:
            raise ValueError("'model' must give the model's name and dimension")

    def with_query(self, **changes) -> IndexManifest:
        """The same manifest with query-section fields changed."""
        return replace(self, query=replace(self.query, **changes))

    def with_build(self, **changes) -> IndexManifest:
        """The same manifest with build-section fields changed."""
        return replace(self, build=replace(self.build, **changes))


def seal_of(data: dict) -> str:
    """sha256 of a manifest's JSON without its own seal: an edited manifest is never taken as unchanged."""
    body = {k: v for k, v in data.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest_json(index_dir: Path) -> dict:
    """The raw JSON of ``manifest.json``; IndexNotFoundError / IndexCorruptError when absent or unreadable."""
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(f"no index at {index_dir} (no {MANIFEST}); build one with `policyqa ingest …`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise IndexCorruptError(f"{path} is unreadable (JSON nested too deeply); {FIX}") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({exc}); {FIX}") from None
    if not isinstance(data, dict):
        raise IndexCorruptError(f"{path} is not a JSON object; {FIX}")
    return data


def read_manifest(index_dir: Path) -> IndexManifest:
    """The manifest of the index at ``index_dir``, typed and checked."""
    return IndexManifest.from_json(read_manifest_json(index_dir), index_dir)


def write_manifest(index_dir: Path, manifest: IndexManifest) -> dict:
    """Write ``manifest.json`` atomically (temp file + rename); returns the JSON written."""
    data = manifest.to_json()
    path = Path(index_dir) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temp file is left beside the intact manifest
        tmp.unlink(missing_ok=True)
        raise
    return data


def file_digests(root: Path, names) -> dict[str, str]:
    """sha256 of each file ``names`` under ``root``."""
    out = {}
    for name in names:
        h = hashlib.sha256()
        with open(Path(root) / name, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
        out[name] = h.hexdigest()
    return out


def files_intact(index_dir: Path, manifest: IndexManifest) -> bool:
    """Every recorded file is there with its recorded size (cheap; ``altered_file`` checks the digests too)."""
    return bool(manifest.files) and all(
        (Path(index_dir) / n).is_file() and (Path(index_dir) / n).stat().st_size == size
        for n, size in manifest.files.items())


def altered_file(index_dir: Path, files: Mapping[str, int], digests: Mapping[str, str]) -> str | None:
    """The first of ``files`` whose bytes are not the recorded ones — missing, another size, or (where a digest is
    recorded) another sha256 — else None.  sha256 runs at ~0.8 GB/s here (SHA-NI): 0.4 s for the 345 MB STARD
    index, nothing noticeable for the default corpus (bench/bench_verify.py)."""
    for name, size in files.items():
        path = Path(index_dir) / name
        if not path.is_file() or path.stat().st_size != size:
            return name
    for name in files:
        if name in digests and file_digests(index_dir, [name])[name] != digests[name]:
            return name
    return None

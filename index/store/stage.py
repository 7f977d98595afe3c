"""The relevance stage that ships with a model (``embedder.relevance_dir``): copied into an index when it is built,
and replaced in place (no rebuild) when the model's stage changes."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from index.store.layout import RELEVANCE
from index.store.manifest import IndexManifest, file_digests

if TYPE_CHECKING:
    from index.embed import Embedder


def model_abstain(embedder: Embedder) -> dict | None:
    """The fast path's abstention thresholds that come with this model, as an index records them (None: none)."""
    abstain = getattr(embedder, "abstain_thresholds", None)
    return dict(abstain) if abstain else None


def shipped_stage_dir(embedder: Embedder) -> Path | None:
    stage_dir = getattr(embedder, "relevance_dir", None)
    return Path(stage_dir) if stage_dir is not None and (Path(stage_dir) / "stage.json").is_file() else None


def _digest_of(folder: Path, names) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return h.hexdigest()


def shipped_stage_digest(embedder: Embedder) -> str | None:
    """sha256 of the relevance stage that comes with this model (None: none, or trained for another model)."""
    from index.relevance import RelevanceStage

    folder = shipped_stage_dir(embedder)
    if folder is None:
        return None
    stage = RelevanceStage.load(folder)
    return _digest_of(folder, stage.files()) if stage.trained_for in (None, embedder.name) else None


def stage_digest(index_dir: Path, manifest: IndexManifest) -> str | None:
    """sha256 of the relevance stage the index holds."""
    if not manifest.query.relevance:
        return None
    folder = Path(index_dir) / manifest.query.relevance
    names = [n.split("/", 1)[1] for n in manifest.files if n.startswith(manifest.query.relevance + "/")]
    try:
        return _digest_of(folder, names)
    except OSError:
        return "missing"


def replace_stage(index_dir: Path, manifest: IndexManifest, embedder: Embedder) -> IndexManifest:
    """Put the model's current relevance stage (or none) into the index and record it (called under the lock)."""
    shutil.rmtree(Path(index_dir) / RELEVANCE, ignore_errors=True)
    files = {k: v for k, v in manifest.files.items() if not k.startswith(RELEVANCE + "/")}
    name = copy_shipped_stage(embedder, Path(index_dir))
    if name is not None:
        files.update({p.relative_to(index_dir).as_posix(): p.stat().st_size
                      for p in sorted((Path(index_dir) / name).iterdir())})
    new = manifest.with_query(relevance=name)
    return IndexManifest(new.build, new.query, files, file_digests(index_dir, files))


def copy_shipped_stage(embedder: Embedder, folder: Path) -> str | None:
    """Copy the model's relevance stage into the index (being built) in ``folder``; its folder name, or None."""
    from index.relevance import RelevanceStage

    source = shipped_stage_dir(embedder)
    if source is None or shipped_stage_digest(embedder) is None:  # none, or trained for another model
        return None
    (folder / RELEVANCE).mkdir()
    for name in RelevanceStage.load(source).files():
        shutil.copy2(source / name, folder / RELEVANCE / name)
    return RELEVANCE

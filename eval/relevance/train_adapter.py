"""A model-level query adapter (index/adapter.py) trained on the team's policy questions and STARD's tune half together,
so that it moves queries towards answering provisions in general rather than towards one corpus.  One command:

    .venv/bin/python -m eval.relevance.train_adapter [--steps 300]

Training: policies ``train`` questions over data/policies-index (provision-level gold) + STARD tune-half A (the first
half of the first 618 questions, doc-level gold) over data/stard-index.  Validation (step count): policies ``dev`` +
STARD tune-half B, mean dense MRR@10.  STARD's held-out half and the default corpus are never read.  Passage vectors
come from the indexes as built (nothing is re-embedded); W starts at 0 (the identity map) and a step count of 0 wins
when nothing beats the plain model.  Writes data/relevance/query_adapter.npz and prints the curve.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from eval.adapter import candidates, dense_mrr  # noqa: E402
from eval.relevance.candidates import POLICIES_INDEX, STARD_INDEX  # noqa: E402
from eval.relevance.question_sets import policy_questions, stard_questions  # noqa: E402
from index.adapter import QueryAdapter  # noqa: E402
from index.normalize import to_simplified  # noqa: E402

OUT = ROOT / "data" / "relevance" / "query_adapter.npz"
SEED = 13


def _set(index_dir: Path, items, embedder) -> dict:
    """Query vectors, passage vectors and positive rows of ``items`` over the index at ``index_dir``."""
    from index.store import load_index

    ix = load_index(index_dir)
    key_rows: dict[str, list[int]] = {}
    for row, c in enumerate(ix.chunks):
        key_rows.setdefault(c.provision_id, []).append(row)
        key_rows.setdefault(c.doc_id, []).append(row)
    items = [it for it in items if it.gold]
    pos = [np.asarray(sorted({r for g in it.gold for r in key_rows.get(g, ())}), np.int64) for it in items]
    keep = [i for i, p in enumerate(pos) if len(p)]
    texts = [to_simplified(items[i].query) for i in keep]
    return {"q": embedder.encode_queries(texts).astype(np.float32), "p": np.asarray(ix.vectors, np.float32),
            "pos": [pos[i] for i in keep], "n": len(keep)}


def fit_sets(train: list[dict], val: list[dict], steps: int, tau: float, l2: float, lr: float, k: int = 128,
             every: int = 10) -> tuple[np.ndarray, list]:
    """One W over several (queries, passages) sets: multi-positive InfoNCE over each query's positives and its ``k``
    nearest passages of its own corpus; the step with the best mean validation dense MRR@10 is kept."""
    import torch

    torch.manual_seed(SEED)
    qs, pcs, masks = [], [], []
    for s in train:
        cand = candidates(s["q"], s["p"], s["pos"], k)
        qs.append(torch.from_numpy(s["q"]))
        pcs.append(torch.from_numpy(np.ascontiguousarray(s["p"][cand])))
        n_pos = torch.tensor([min(len(p), k) for p in s["pos"]])
        masks.append(torch.arange(k)[None, :] < n_pos[:, None])
    q, pc, mask = torch.cat(qs), torch.cat(pcs), torch.cat(masks)
    dim = q.shape[1]
    w = torch.zeros((dim, dim), requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)

    def score(weight: np.ndarray) -> list[float]:
        return [dense_mrr(QueryAdapter("", weight, {}).apply(s["q"]), s["p"], s["pos"]) for s in val]

    base = score(np.zeros((dim, dim), np.float32))
    best = (float(np.mean(base)), 0, np.zeros((dim, dim), np.float32))
    curve = [(0, None, [round(x, 4) for x in base])]
    print(f"  step    0 val dense MRR@10 {[round(x, 4) for x in base]}", flush=True)
    for step in range(1, steps + 1):
        opt.zero_grad()
        a = q + q @ w
        a = a / a.norm(dim=1, keepdim=True)
        logits = torch.einsum("nd,nkd->nk", a, pc) / tau
        posl = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
        loss = (torch.logsumexp(logits, dim=1) - posl).mean() + l2 * (w * w).sum()
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            vals = score(w.detach().numpy().copy())
            curve.append((step, round(float(loss.detach()), 4), [round(x, 4) for x in vals]))
            print(f"  step {step:4d} loss {float(loss.detach()):.4f} val dense MRR@10 {[round(x, 4) for x in vals]}",
                  flush=True)
            if np.mean(vals) > best[0]:
                best = (float(np.mean(vals)), step, w.detach().numpy().copy())
    return best[2], curve


def main() -> int:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from index.embed import load_embedder
    from index.store import read_documents

    t0 = time.perf_counter()
    emb = load_embedder()
    pol, _ = policy_questions(read_documents(POLICIES_INDEX))
    stard = stard_questions()
    sets = {
        "policies-train": _set(POLICIES_INDEX, [i for i in pol if i.split == "train"], emb),
        "stard-a": _set(STARD_INDEX, [i for i in stard if i.split == "stard-a"], emb),
        "policies-dev": _set(POLICIES_INDEX, [i for i in pol if i.split == "dev"], emb),
        "stard-b": _set(STARD_INDEX, [i for i in stard if i.split == "stard-b"], emb),
    }
    print({k: v["n"] for k, v in sets.items()}, f"{time.perf_counter() - t0:.0f} s", flush=True)
    weight, curve = fit_sets([sets["policies-train"], sets["stard-a"]], [sets["policies-dev"], sets["stard-b"]],
                             args.steps, args.tau, args.l2, args.lr)
    best = max(curve, key=lambda c: (float(np.mean(c[2])), -c[0]))
    meta = {"trained_by": "python -m eval.relevance.train_adapter", "scope": "model (policies train + STARD tune A)",
            "steps": best[0], "val_mrr": {"policies-dev": best[2][0], "stard-b": best[2][1]},
            "val_mrr_plain": {"policies-dev": curve[0][2][0], "stard-b": curve[0][2][1]},
            "questions": {k: v["n"] for k, v in sets.items()}, "tau": args.tau, "l2": args.l2, "lr": args.lr,
            "seconds": round(time.perf_counter() - t0)}
    QueryAdapter(emb.name, weight, meta).save(args.out)
    print(json.dumps(meta, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

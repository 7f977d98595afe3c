"""Train the query adapter (index/adapter.py) on a BEIR benchmark's questions against its built index.

    python -m eval.adapter /work/shared/bench/stard            # trains on the first half, writes eval/data/stard-query_adapter-…npz

The questions of ``qrels/<split>.tsv`` are taken in file order; the first ``--train-share`` of them (default half) are
the training questions (the "tune" rows of `policyqa eval beir`), the rest are never seen here: they are the "heldout"
rows of its report.  Among the training questions the last fifth picks the number of steps (early stopping on
MRR@10 of dense retrieval), then the adapter is refit on all training questions for that many steps.  Unless
``--tau`` and ``--lr`` are given, the same early-stopping questions also pick them from a small grid (``GRID``): the
first settings (τ 0.05, lr 2e-3) were chosen for the plain model and overfit the fine-tuned default model from the
first ten steps on (its cosines spread wider), so `policyqa tune` wrote no adapter for it (session 12).

The passage vectors are read from the benchmark's index (built by `policyqa eval beir DIR`; the same cache key), so
nothing is re-embedded; query vectors come from the model exactly as the Searcher makes them.  The loss is a softmax
(multi-positive InfoNCE, temperature ``--tau``) over each question's positives and its 256 nearest passages, plus
``--l2`` · ||W||², W starting at 0 (identity map).  CPU, a few minutes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from eval.beir import TUNE_SHARE, beir_index_dir, load_beir, tune_cut
from index.adapter import QueryAdapter, adapter_filename
from index.normalize import to_simplified


#: (temperature, learning rate) pairs tried when none is given; the first is the plain model's original setting.
GRID = ((0.05, 2e-3), (0.05, 5e-4), (0.05, 2e-4), (0.02, 5e-4), (0.02, 2e-4), (0.1, 5e-4))


def positive_rows(questions, qrels, doc_rows: dict[str, list[int]]) -> list[np.ndarray]:
    """Each question's judged-relevant index rows (``doc_rows``: judged id -> rows; empty when none is in the index)."""
    return [np.asarray(sorted(r for d, g in qrels[q.id].items() if g > 0 for r in doc_rows.get(d, ())), np.int64)
            for q in questions]


def dense_mrr(queries: np.ndarray, passages: np.ndarray, positives: list[np.ndarray], at: int = 10) -> float:
    """MRR@at of plain dense retrieval (chunk level) over ``passages``: the early-stopping criterion."""
    total = 0.0
    for i in range(0, len(queries), 64):
        scores = queries[i : i + 64] @ passages.T
        top = np.argpartition(-scores, at, axis=1)[:, :at]
        for j, row in enumerate(top):
            ranked = row[np.argsort(-scores[j, row])]
            hit = np.flatnonzero(np.isin(ranked, positives[i + j]))
            total += 1.0 / (hit[0] + 1) if len(hit) else 0.0
    return total / max(len(queries), 1)


def candidates(queries: np.ndarray, passages: np.ndarray, positives: list[np.ndarray], k: int) -> np.ndarray:
    """(n, k) passage rows per query: its positives first, then its nearest other passages (hard negatives)."""
    out = np.zeros((len(queries), k), np.int64)
    for i in range(0, len(queries), 64):
        scores = queries[i : i + 64] @ passages.T
        near = np.argpartition(-scores, k, axis=1)[:, :k]
        for j, row in enumerate(near):
            pos = positives[i + j][:k]
            rest = row[np.argsort(-scores[j, row])]
            out[i + j] = np.concatenate([pos, rest[~np.isin(rest, pos)]])[:k]
    return out


def fit(queries: np.ndarray, passages: np.ndarray, positives: list[np.ndarray], steps: int, tau: float, l2: float,
        lr: float = 2e-3, k: int = 256, val: tuple | None = None, every: int = 10, seed: int = 0
        ) -> tuple[np.ndarray, list]:
    """W (dim×dim) minimising multi-positive InfoNCE of the adapted queries over each query's positives and its ``k``
    nearest passages (hard negatives, fixed at the start); the validation curve (full-corpus MRR@10) if ``val``."""
    import torch

    torch.manual_seed(seed)
    dim = queries.shape[1]
    cand = candidates(queries, passages, positives, k)
    q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
    pc = torch.from_numpy(np.ascontiguousarray(passages[cand], np.float32))  # (n, k, dim)
    n_pos = torch.tensor([min(len(p), k) for p in positives])
    mask = torch.arange(k)[None, :] < n_pos[:, None]
    w = torch.zeros((dim, dim), requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    curve = []
    best = (-1.0, 0, w.detach().clone())
    if val is not None:  # step 0 = no adapter: an adapter is only kept when it beats this
        best = (dense_mrr(val[0], passages, val[1]), 0, w.detach().clone())
        curve.append((0, None, round(best[0], 4)))
    for step in range(1, steps + 1):
        opt.zero_grad()
        a = q + q @ w
        a = a / a.norm(dim=1, keepdim=True)
        logits = torch.einsum("nd,nkd->nk", a, pc) / tau
        pos = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
        loss = (torch.logsumexp(logits, dim=1) - pos).mean() + l2 * (w * w).sum()
        loss.backward()
        opt.step()
        if val is not None and (step % every == 0 or step == steps):
            vq, vpos = val
            adapted = QueryAdapter("", w.detach().numpy().copy(), {}).apply(vq)
            mrr = dense_mrr(adapted, passages, vpos)
            curve.append((step, round(float(loss.detach()), 4), round(mrr, 4)))
            print(f"  step {step:4d} loss {float(loss.detach()):.4f} val dense MRR@10 {mrr:.4f}", flush=True)
            if mrr > best[0]:
                best = (mrr, step, w.detach().clone())
    return (best[2] if val is not None else w.detach()).numpy(), curve


def pick(curves: dict[tuple[float, float], list]) -> tuple[float, float, int, float] | None:
    """(tau, lr, steps, early-stopping MRR@10) of the best point of the validation ``curves`` of ``fit`` (one per
    (tau, lr), each starting with step 0 = no adapter); the earliest step and the first setting win ties; None when no
    step of any setting beats step 0."""
    best = None
    for (tau, lr), curve in curves.items():
        base = curve[0][2]
        for step, _, mrr in curve[1:]:
            if mrr > base and (best is None or mrr > best[3]):
                best = (tau, lr, step, mrr)
    return best


def train_adapter(qv: np.ndarray, passages: np.ndarray, positives: list[np.ndarray], steps: int = 200,
                  l2: float = 1e-3, tau: float | None = None, lr: float | None = None, log=print) -> dict | None:
    """Early stopping on the last fifth of the questions (in their order) picks (τ, lr) from ``GRID`` (or the given
    ones) and the number of steps; then W is refit on all of them for that many steps.  Returns the weight, the
    settings and the early-stopping curve, or None when no setting beats no adapter on those questions."""
    n_fit = tune_cut(len(qv), 0.8)
    log(f"{len(qv)} questions ({n_fit} fit + {len(qv) - n_fit} early-stopping), {len(passages)} passages; "
        f"early-stopping dense MRR@10 without adapter {dense_mrr(qv[n_fit:], passages, positives[n_fit:]):.4f}")
    grid = list(dict.fromkeys([(tau or t, lr or r) for t, r in GRID] if tau is None or lr is None else [(tau, lr)]))
    curves = {}
    for t, r in grid:
        log(f"tau {t} lr {r}:")
        curves[(t, r)] = fit(qv[:n_fit], passages, positives[:n_fit], steps, t, l2, r,
                             val=(qv[n_fit:], positives[n_fit:]))[1]
    chosen = pick(curves)
    if chosen is None:
        return None
    tau, lr, best_step, best_mrr = chosen
    curve = curves[(tau, lr)]
    log(f"best: tau {tau} lr {lr} step {best_step}, early-stopping dense MRR@10 {curve[0][2]:.4f} -> {best_mrr:.4f}; "
        f"refit on all {len(qv)} questions")
    weight, _ = fit(qv, passages, positives, best_step, tau, l2, lr)
    return {"weight": weight, "tau": tau, "lr": lr, "l2": l2, "steps": best_step, "curve": curve,
            "grid": [list(g) for g in grid], "fit_questions": n_fit,
            "early_stopping_mrr10": [curve[0][2], best_mrr]}


def main(argv: list[str] | None = None) -> int:
    from index import config
    from index.embed import load_embedder
    from index.store import load_index

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", type=Path, help="BEIR folder (corpus.jsonl, queries*.jsonl, qrels/<split>.tsv)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--index", type=Path, default=None, help="its index (default: the `policyqa eval beir` cache)")
    ap.add_argument("--train-share", type=float, default=TUNE_SHARE, help="first share of the questions used for training")
    ap.add_argument("--steps", type=int, default=200, help="most steps (early stopping picks fewer)")
    ap.add_argument("--tau", type=float, default=None, help="InfoNCE temperature (default: picked from GRID)")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: picked from GRID)")
    ap.add_argument("--w-dense", type=float, default=0.9,
                    help="hybrid fusion weight used with the adapter (w_bm25 = 1 - it); chosen on the tune half "
                         "without adapter: 0.7 / 0.8 / 0.9 -> R@10 .511 / .530 / .557 (eval/reports/QUALITY.md)")
    ap.add_argument("--out", type=Path, default=None, help="default: eval/data/<benchmark>-query_adapter-<model>.npz; attach it with policyqa tune")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    embedder = load_embedder()
    data = load_beir(args.directory, split=args.split)
    index_dir = args.index or beir_index_dir(data.corpus, embedder.name, config.data_dir() / "beir")
    ix = load_index(index_dir, embedder)
    doc_rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(ix.chunks):
        doc_rows.setdefault(chunk.doc_id, []).append(row)
    n_train = tune_cut(len(data.questions), args.train_share)
    train = data.questions[:n_train]
    texts = [to_simplified(q.query) if ix.settings.dense_t2s else q.query for q in train]
    qv = embedder.encode_queries(texts).astype(np.float32)
    pos = positive_rows(train, data.qrels, doc_rows)
    passages = np.asarray(ix.vectors, np.float32)
    result = train_adapter(qv, passages, pos, args.steps, args.l2, args.tau, args.lr)
    if result is None:
        print("no step beats the plain model on the early-stopping questions: no adapter written")
        return 1
    weight, best_step, curve = result.pop("weight"), result["steps"], result["curve"]
    args.tau, args.lr, grid = result["tau"], result["lr"], result["grid"]
    meta = {
        "benchmark": Path(args.directory).name, "split": args.split, "train_questions": len(train),
        "train_ids_first_last": [train[0].id, train[-1].id], "train_share": args.train_share, "steps": best_step,
        "tau": args.tau, "l2": args.l2, "lr": args.lr, "index_corpus_sha256": ix.manifest.build.corpus_sha256,
        "curve": curve, "grid": grid, "trained_by": "python -m eval.adapter",
        "fusion": {"w_dense": args.w_dense, "w_bm25": round(1.0 - args.w_dense, 6)},
    }
    out = args.out or Path(__file__).resolve().parent / "data" / (
        f"{Path(args.directory).name}-" + adapter_filename(embedder.name))
    QueryAdapter(embedder.name, weight, meta).save(out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} kB) in {time.perf_counter() - t0:.0f} s")
    print(json.dumps({k: v for k, v in meta.items() if k != "curve"}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

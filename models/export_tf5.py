#!/usr/bin/env python3
"""Build the transformers-5 fixtures of the import matrix: torch.onnx's dynamo exporter today.

export.py makes the transformers-4 fixtures (its environment, requirements.txt, pins torch 2.7.1
and transformers 4.49, and its TorchScript exports need transformers 4: the TorchScript tracer
cannot export the mask code of transformers 5). This companion runs in the environment of
requirements-tf5.txt (current torch, transformers 5) and writes, for each cell of

    attention implementation (eager, sdpa) x dynamo opset (18, 20, 23)

  tiny-tf5.dynamo<opset>-<attention>.onnx            single file, initializers inline
  tiny-tf5.dynamo<opset>-<attention>.ref.safetensors onnxruntime logits, same format as export.py's

plus tiny-tf5.dynamo20-sdpa-external.onnx (+ .onnx.data), saved by the exporter with external data,
tiny-distil.tf5-dynamo20-sdpa.onnx (DistilGPT2's 6 layers and 12 heads at width 48, random),
tiny-untied.tf5-dynamo20-sdpa.onnx (lm_head not tied to the token table, random),

and the trained byte-level model (export.py's tiny-trained, its committed weights) exported as a
user would today, sdpa at the exporter's default opset 20:

  tiny-trained.tf5-dynamo20-sdpa.onnx, tiny-trained.tf5-dynamo20-sdpa.ref.safetensors

It reuses export.py's model helpers, reference writer and ONNX description, and updates
manifest.json and ops.txt in place (its entries carry their own tool versions).

Usage:
  python3 -m venv /path/to/venv-tf5 && /path/to/venv-tf5/bin/pip install -r models/requirements-tf5.txt
  /path/to/venv-tf5/bin/python models/export_tf5.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import export  # noqa: E402  (export.py beside this file)

NAME = "tiny-tf5"
export.MODELS[NAME] = dict(
    seed=3,
    config=dict(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                activation_function="gelu_new"),
)
# DistilGPT2's depth and head count (6 layers, 12 heads), at a test width.
DEEP = "tiny-distil"
export.MODELS[DEEP] = dict(
    seed=4,
    config=dict(vocab_size=256, n_embd=48, n_layer=6, n_head=12, n_positions=64,
                activation_function="gelu_new"),
)
# An untied vocabulary projection (lm_head its own weight, drawn N(0, 0.5)).
UNTIED = "tiny-untied"
export.MODELS[UNTIED] = dict(
    seed=5,
    config=dict(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                activation_function="gelu_new"),
    tie_word_embeddings=False,
)
ATTENTION = ["eager", "sdpa"]
OPSETS = [18, 20, 23]
TRAINED_OPSET = 20


def new_model(attn: str, name: str = NAME):
    """The random-init model with attention implementation `attn`, as a logits-only module.

    HF init leaves every bias at 0 and every LayerNorm gain at 1; those are redrawn here (seeded)
    so that the fixtures also test that biases and gains are read from the right place."""
    from transformers import GPT2LMHeadModel

    export.set_seed(export.MODELS[name]["seed"])
    config = export.hf_config(name)
    tied = export.MODELS[name].get("tie_word_embeddings", True)
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
    wrapper = export.logits_only(model) if tied else untied_logits_only(model)
    got = wrapper.config._attn_implementation
    assert got == attn, f"asked for {attn} attention, the model uses {got}"
    return model, wrapper


def untied_logits_only(model):
    """export.logits_only for a model whose lm_head is its own weight (that one asserts the tie)."""
    from transformers import GPT2LMHeadModel

    class GPT2UntiedLogitsOnly(GPT2LMHeadModel):
        def forward(self, input_ids):
            return super().forward(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    m = GPT2UntiedLogitsOnly(model.config)
    m.load_state_dict(model.state_dict())
    assert m.lm_head.weight.data_ptr() != m.transformer.wte.weight.data_ptr()
    assert not torch.equal(m.lm_head.weight, m.transformer.wte.weight)
    return m.eval()


def trained_model():
    """tiny-trained (export.py's byte-level model trained on the KJV), its committed weights
    loaded into a transformers-5 GPT2LMHeadModel with the default (sdpa) attention."""
    from safetensors.torch import load_file

    model = export.new_model("tiny-trained")
    sd = load_file(str(HERE / "tiny-trained.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    wrapper = export.logits_only(model.eval())
    assert wrapper.config._attn_implementation == "sdpa", wrapper.config._attn_implementation
    return model, wrapper


def export_dynamo(wrapper, path: Path, opset: int, n_positions: int, external: bool = False):
    """Single file; or, with `external`, as the exporter itself writes external data (the
    weights in `<path>.data`), untouched."""
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
    data = path.with_name(path.name + ".data")
    if external:
        data.unlink(missing_ok=True)
        prog.save(str(path), external_data=True)
        assert data.exists(), "the exporter wrote no external data"
        dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type
        assert dim.shape.dim[1].dim_param == "seq", dim
        return
    prog.save(str(path), external_data=False)
    m = onnx.load(str(path))
    export.rename_dim(m, "seq")
    onnx.save_model(m, str(path), save_as_external_data=False)
    data.unlink(missing_ok=True)


def write_cell(path: Path, name: str, attn: str, opset: int, wrapper, manifest, versions,
               external: bool = False):
    """Export one cell, check it, write its onnxruntime references and its manifest entry."""
    import onnx

    ref = path.with_name(path.name.removesuffix(".onnx") + ".ref.safetensors")
    print(f"== {path.name}", flush=True)
    export_dynamo(wrapper, path, opset, export.MODELS[name]["config"]["n_positions"], external)
    onnx.checker.check_model(str(path))
    d = export.describe_onnx(path)
    if not export.MODELS[name].get("tie_word_embeddings", True):
        # describe_onnx takes any other [C, V] initializer for a copy of the embedding.
        d["lm_head"] = (f"untied: the final MatMul reads its own [C, V] initializer; the Gather "
                        f"reads '{d['embedding_initializer']}'")
    maxdiff, diffs = export.ort_reference(path, ref, name, wrapper, print)
    files = [p for p in (path, path.with_name(path.name + ".data")) if p.exists()]
    d.update(model=name, exporter=f"dynamo (transformers 5, attention {attn})",
             attn_implementation=attn, sizes={p.name: p.stat().st_size for p in files},
             sha256=export.sha256(path), reference=ref.name,
             torch_vs_ort_max_abs_diff=maxdiff, torch_vs_ort_per_case=diffs,
             versions=versions)
    manifest["files"][path.name] = d
    print(f"  opset {d['opsets']}, {d['n_nodes']} nodes, {path.stat().st_size} bytes", flush=True)
    print(f"  ops: {' '.join(d['ops'])}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: models/)")
    args = ap.parse_args()

    import onnx
    import onnxruntime
    import onnxscript
    import safetensors
    import transformers

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    versions = dict(python=sys.version.split()[0], torch=torch.__version__,
                    transformers=transformers.__version__, onnx=onnx.__version__,
                    onnxruntime=onnxruntime.__version__, onnxscript=onnxscript.__version__,
                    safetensors=safetensors.__version__, numpy=np.__version__)
    print(f"versions: {versions}", flush=True)
    if not transformers.__version__.startswith("5."):
        sys.exit(f"transformers {transformers.__version__}: this script wants 5.x "
                 "(pip install -r models/requirements-tf5.txt)")

    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("models", {})
    manifest.setdefault("files", {})
    for name, attn in ((NAME, ATTENTION), (DEEP, ["sdpa"]), (UNTIED, ["sdpa"])):
        tied = export.MODELS[name].get("tie_word_embeddings", True)
        manifest["models"][name] = dict(
            config=dict(export.MODELS[name]["config"], tie_word_embeddings=tied),
            seed=export.MODELS[name]["seed"],
            attn_implementation=attn,
            init="HF GPT-2 init, then biases ~ N(0, 0.1) and LayerNorm gains ~ 1 + N(0, 0.1)",
            cases=export.cases_for(name), versions=versions,
        )

    for attn in ATTENTION:
        model, wrapper = new_model(attn)
        manifest["models"][NAME]["n_params"] = sum(p.numel() for p in model.parameters())
        for opset in OPSETS:
            path = out / f"{NAME}.dynamo{opset}-{attn}.onnx"
            write_cell(path, NAME, attn, opset, wrapper, manifest, versions)
        if attn == "sdpa":
            # The exporter's own external-data layout, at its default opset.
            path = out / f"{NAME}.dynamo20-{attn}-external.onnx"
            write_cell(path, NAME, attn, 20, wrapper, manifest, versions, external=True)
    model, wrapper = new_model("sdpa", DEEP)
    manifest["models"][DEEP]["n_params"] = sum(p.numel() for p in model.parameters())
    path = out / f"{DEEP}.tf5-dynamo20-sdpa.onnx"
    write_cell(path, DEEP, "sdpa", 20, wrapper, manifest, versions)
    model, wrapper = new_model("sdpa", UNTIED)
    manifest["models"][UNTIED]["n_params"] = sum(p.numel() for p in model.parameters())
    path = out / f"{UNTIED}.tf5-dynamo20-sdpa.onnx"
    write_cell(path, UNTIED, "sdpa", 20, wrapper, manifest, versions)
    # The trained model as a user exports it today: sdpa at the exporter's default opset (20).
    _, wrapper = trained_model()
    path = out / f"tiny-trained.tf5-dynamo{TRAINED_OPSET}-sdpa.onnx"
    write_cell(path, "tiny-trained", "sdpa", TRAINED_OPSET, wrapper, manifest, versions)

    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    export.write_ops_txt(out, manifest)
    print("done", flush=True)


if __name__ == "__main__":
    main()

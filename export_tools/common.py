"""Shared by the export scripts: ONNX export with a fixed opset and named I/O, parity against
PyTorch eager (max/mean abs error, printed and bounded), and registration in the manifest
(``dream2flow.perception.manifest``: sha256, I/O signature read back from the file, parity).

Why parity is measured on inputs that were *not* used for tracing: the TorchScript exporter
records one execution path; a second, different sample catches shapes or branches that were
frozen by the trace. Why ``randomize_weights``: a tiny model initialised with the usual small
std produces outputs near 0, where any broken graph would pass an absolute bound; re-drawing
weights with fan-in scaling gives O(1) activations, so the bound means something.

May import torch (export side); the runtime never does.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "runtime") not in sys.path:  # running from a checkout without the editable install
    sys.path.insert(0, str(REPO / "runtime"))

from dream2flow.perception.manifest import (ModelSpec, TensorSpec, ort_type_to_dtype, sha256_file,  # noqa: E402
                                            upsert_model)

DEFAULT_OPSET = 17  # TensorRT 8.6 / 10.x parse it fully (GridSample needs >= 16)
MANIFEST_ABOUT = ("Exported perception models. Entries with a sha256 were exported and parity-checked by "
                  "export_tools/; see exported_models/README.md.")


class ParityError(RuntimeError):
    """ONNX Runtime's outputs differ from PyTorch eager by more than the stated bound."""


@dataclass
class OutputParity:
    name: str
    max_abs: float
    mean_abs: float
    ref_max_abs: float
    bound: float

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.bound


def seed_all(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def randomize_weights(model: Any, seed: int) -> None:
    """Re-draw every parameter: matrices/kernels N(0, 1/fan_in), norm scales 1 + N(0, 0.1),
    other vectors N(0, 0.1). Deterministic in ``seed``. For ``--tiny-random`` only."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 1
                std = 1.0 / math.sqrt(max(1, fan_in))
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("weight") or name.endswith("gamma") or name.endswith("lambda1"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _linspace_as_arange(start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None, **_: Any) -> Any:
    """``torch.linspace`` rebuilt from ``arange`` (the TorchScript exporter emits float64 for linspace,
    which then meets float32 in ``GridSample`` and no ONNX Runtime kernel accepts the mix)."""
    import torch

    dtype = dtype or torch.get_default_dtype()
    steps = int(steps)
    if steps == 1:
        return torch.full((1,), float(start), dtype=dtype, device=device)
    step = (float(end) - float(start)) / (steps - 1)
    return torch.arange(steps, dtype=dtype, device=device) * step + float(start)


@contextlib.contextmanager
def onnx_friendly_torch() -> Iterator[None]:
    """Patches in force while tracing only (eager reference outputs are computed outside it)."""
    import torch

    orig = torch.linspace
    torch.linspace = _linspace_as_arange  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.linspace = orig  # type: ignore[assignment]


def export_onnx(module: Any, args: tuple, path: Path, *, input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """TorchScript-based ``torch.onnx.export`` (named I/O, fixed opset, dynamic axes only where given),
    then ``onnx.checker``. The module is put back in eval mode afterwards (the exporter can leave
    it in training mode, which switches dropout on for the reference run)."""
    import warnings

    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings(), onnx_friendly_torch(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dict(dynamic_axes or {}), opset_version=int(opset), dynamo=False,
                          do_constant_folding=True)
    module.eval()
    _fix_output_shapes(path, torch_outputs(module, args, output_names), dynamic_axes or {})
    onnx.checker.check_model(str(path))
    return path


def _fix_output_shapes(path: Path, traced: Mapping[str, np.ndarray], dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
    """Write the true output shapes into the graph (the TorchScript exporter's own inference can
    label axes wrongly, e.g. ``["frames", "frames", "Squeeze_dim_2"]``): eager shapes, with the
    declared dynamic axes named."""
    import onnx

    model = onnx.load(str(path))
    for out in model.graph.output:
        if out.name not in traced:
            continue
        shape = traced[out.name].shape
        dyn = dynamic_axes.get(out.name, {})
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for i, n in enumerate(shape):
            d = dims.add()
            if i in dyn:
                d.dim_param = str(dyn[i])
            else:
                d.dim_value = int(n)
    onnx.save(model, str(path))


def torch_outputs(module: Any, args: tuple, output_names: Sequence[str]) -> dict[str, np.ndarray]:
    import torch

    module.eval()
    with torch.no_grad():
        outs = module(*args)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    return {n: o.detach().cpu().numpy() for n, o in zip(output_names, outs)}


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def ort_outputs(path_or_session: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort_session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))


def compare(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], *, atol: float, rtol: float) -> list[OutputParity]:
    """Per output: max/mean |ORT - eager| over finite reference entries (the non-finite pattern must
    match exactly, e.g. Grounding DINO's -inf logits on padding), bound = atol + rtol * max|eager|."""
    res = []
    for name, r in ref.items():
        if name not in got:
            raise ParityError(f"output '{name}' missing from the ONNX model")
        g = np.asarray(got[name])
        r = np.asarray(r)
        if g.shape != r.shape:
            raise ParityError(f"output '{name}': ONNX shape {list(g.shape)} != PyTorch {list(r.shape)}")
        if r.dtype == bool or g.dtype == bool:
            diff = (g.astype(bool) != r.astype(bool)).astype(np.float64)
            res.append(OutputParity(name, float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0, 1.0, 0.0))
            continue
        fin = np.isfinite(r)
        if not np.array_equal(fin, np.isfinite(g)) or not np.array_equal(r[~fin], g[~fin]):
            raise ParityError(f"output '{name}': the non-finite entries differ between ONNX and PyTorch")
        d = np.abs(g[fin].astype(np.float64) - r[fin].astype(np.float64))
        ref_max = float(np.abs(r[fin]).max(initial=0.0))
        res.append(OutputParity(name, float(d.max(initial=0.0)), float(d.mean()) if d.size else 0.0, ref_max,
                                float(atol + rtol * ref_max)))
    return res


def check_parity(model_name: str, samples: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], *,
                 atol: float, rtol: float, onnx_path: Path, printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ORT on each (feeds, eager outputs) sample, print max/mean abs error per output, and raise
    ``ParityError`` if any exceeds its bound. Returns the worst figures for the manifest."""
    sess = ort_session(onnx_path)
    worst: dict[str, OutputParity] = {}
    for i, (feeds, ref) in enumerate(samples):
        got = ort_outputs(sess, feeds)
        for p in compare(ref, got, atol=atol, rtol=rtol):
            printer(f"parity {model_name} sample {i} output '{p.name}': max_abs={p.max_abs:.3g} "
                    f"mean_abs={p.mean_abs:.3g} (|ref| max {p.ref_max_abs:.3g}, bound {p.bound:.3g}) "
                    f"{'ok' if p.ok else 'FAIL'}")
            if p.name not in worst or p.max_abs / max(p.bound, 1e-30) > worst[p.name].max_abs / max(worst[p.name].bound, 1e-30):
                worst[p.name] = p
    bad = [p for p in worst.values() if not p.ok]
    if bad:
        raise ParityError("; ".join(f"{model_name} output '{p.name}' max_abs {p.max_abs:.3g} > bound {p.bound:.3g}"
                                    for p in bad))
    return {
        "max_abs": float(max(p.max_abs for p in worst.values())),
        "mean_abs": float(max(p.mean_abs for p in worst.values())),
        "bound": float(min(p.bound for p in worst.values())),
        "ref_max_abs": float(max(p.ref_max_abs for p in worst.values())),
        "atol": float(atol), "rtol": float(rtol), "samples": len(samples),
        "per_output_max_abs": {p.name: float(p.max_abs) for p in worst.values()},
    }


def file_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The I/O signature as ONNX Runtime reads it (what the engine will compare against)."""
    sess = ort_session(path)

    def conv(args: Any) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(a.name, ort_type_to_dtype(a.type), tuple(d if isinstance(d, (int, str)) else "?" for d in a.shape))
                     for a in args)

    return conv(sess.get_inputs()), conv(sess.get_outputs())


def register(manifest_path: Path, *, name: str, role: str, onnx_path: Path, opset: int, source_checkpoint: str,
             license: str, export_command: str, parity: dict[str, Any], preprocess: dict[str, Any] | None = None,
             trt_profile: dict[str, dict[str, list[int]]] | None = None, tiny_random: bool = False,
             fixture: bool = False, notes: str = "", extra_files: Sequence[Path] = ()) -> ModelSpec:
    """Write/replace the model's manifest entry. ``file`` is stored relative to the manifest's
    folder when the model lies under it."""
    onnx_path = Path(onnx_path).resolve()
    mdir = Path(manifest_path).resolve().parent
    try:
        rel = str(onnx_path.relative_to(mdir))
    except ValueError:
        rel = str(onnx_path)
    ins, outs = file_signature(onnx_path)
    pre = dict(preprocess or {})
    for extra in extra_files:
        pre[f"sha256_{Path(extra).name.replace('.', '_')}"] = sha256_file(extra)
    import onnxruntime

    try:
        import torch

        made_with = f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    except ImportError:  # io fixtures are built without torch
        made_with = f"onnx.helper, onnxruntime {onnxruntime.__version__}"
    spec = ModelSpec(
        name=name, role=role, file=rel, opset=int(opset), inputs=ins, outputs=outs, sha256=sha256_file(onnx_path),
        status="exported", source_checkpoint=source_checkpoint, license=license, export_command=export_command,
        tiny_random=tiny_random, fixture=fixture,
        notes=(notes + (" " if notes else "")
               + f"Exported {time.strftime('%Y-%m-%d')} with {made_with}."),
        parity=parity, preprocess=pre, trt_profile=dict(trt_profile or {}),
    )
    upsert_model(manifest_path, spec, MANIFEST_ABOUT)
    return spec


def base_parser(description: str, default_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official checkpoint: a local folder/file (or a hub id, which downloads)")
    src.add_argument("--tiny-random", action="store_true",
                     help="a tiny randomly initialised instance of the same architecture (tests, CI; no download)")
    p.add_argument("--out", required=True, help="folder for the .onnx file(s)")
    p.add_argument("--manifest", help="manifest to register in (default OUT/manifest.toml)")
    p.add_argument("--name", default=default_name, help=f"manifest name (default {default_name})")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--atol", type=float, default=None, help="parity bound: absolute part")
    p.add_argument("--rtol", type=float, default=None, help="parity bound: relative part (times max|eager output|)")
    return p


def command_line(script: str, argv: Sequence[str]) -> str:
    """The reproducible command that made an export (recorded in the manifest)."""
    return " ".join(["python", f"export_tools/{script}", *(shlex.quote(a) for a in argv)])


def manifest_path(args: argparse.Namespace) -> Path:
    return Path(args.manifest) if args.manifest else Path(args.out) / "manifest.toml"


def offline_hub() -> None:
    """Tiny exports never touch the hub: make any accidental download fail fast."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

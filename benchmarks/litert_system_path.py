"""What LiteRT's system path costs beyond its compute at a batch of one, against ONNX Runtime's.

One MLP (784-256-10, seeded random weights) as a float ONNX model on ONNX Runtime and as a full-integer
INT8 TFLite model on LiteRT's CPU interpreter (the coral backend with --device cpu). For each, per call
of one sample: the backend's system call (`infer`: what the adapter runs) and its compute step (what
the compute figures time), interleaved over --rounds, medians. Printed:
  - outside compute = infer - compute step, for each runtime, and LiteRT's / ORT's;
  - the host-side quantize + dequantize of one sample (mlperf_ext.zoo.tflite.TensorQuant) against the
    np.clip formulation it replaced, written here as the baseline and timed alike in the same run.

Usage: python benchmarks/litert_system_path.py [--rounds 5] [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_models(folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mlperf_ext.datasets.mnist import mlp_input, mnist_split
    from mlperf_ext.zoo import tflite

    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal(s).astype(np.float32) * 0.05 for s in ((784, 256), (256, 10)))
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"])]
    weights = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(256, np.float32), "b1"),
               numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(10, np.float32), "b2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_path = folder / "mlp.onnx"
    onnx.save(model, onnx_path)
    calibration = mlp_input(mnist_split()[0])[:256]
    tflite_path = folder / "mlp_int8.tflite"
    tflite_path.write_bytes(tflite.quantize_int8(tflite.float_tflite(model), calibration, "input"))
    return onnx_path, tflite_path


def clip_quantize(quant, x):
    """The formulation TensorQuant.quantize replaced (the baseline)."""
    import numpy as np

    info = np.iinfo(np.dtype(quant.dtype))
    q = np.rint(x / np.float32(quant.scale)) + quant.zero_point
    return np.clip(q, info.min, info.max).astype(quant.dtype)


def clip_dequantize(quant, q):
    import numpy as np

    return ((q.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    import numpy as np

    from sut.base import DeploymentOptions
    from sut.registry import create_backend

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, tflite_path = build_models(Path(tmp))
        backends = {}
        for name, path in (("onnxruntime", onnx_path), ("coral", tflite_path)):
            backend = create_backend(name)
            backend.load(path, DeploymentOptions(threads=1, max_batch=1))
            backends[name] = backend
        x = np.random.default_rng(1).random((1, 784), dtype=np.float32)
        lite = backends["coral"]._streams[0]
        q = lite.qin.quantize(x)
        out = lite.interpreter.get_tensor(lite.output_index)
        calls = {
            **{f"{name} infer": (lambda b=b: b.infer(x)) for name, b in backends.items()},
            **{f"{name} compute": b.compute_step(x) for name, b in backends.items()},
            "quantize+dequantize": lambda: (lite.qin.quantize(x), lite.qout.dequantize(out)),
            "np.clip baseline": lambda: (clip_quantize(lite.qin, x), clip_dequantize(lite.qout, out)),
        }
        assert np.array_equal(clip_quantize(lite.qin, x), q)  # the baseline computes the same bytes
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for label, call in calls.items():
                times[label].append(timeit.timeit(call, number=args.calls) / args.calls * 1e6)
        us = {k: statistics.median(v) for k, v in times.items()}
        outside = {name: us[f"{name} infer"] - us[f"{name} compute"] for name in backends}
        for name in backends:
            print(f"{name:<12} infer {us[f'{name} infer']:6.2f} us, compute step {us[f'{name} compute']:6.2f} us, "
                  f"outside compute {outside[name]:6.2f} us a sample (median of {args.rounds})")
        print(f"outside compute, LiteRT / ORT: {outside['coral'] / outside['onnxruntime']:.2f}")
        print(f"quantize + dequantize of one sample: {us['quantize+dequantize']:.2f} us; np.clip baseline "
              f"{us['np.clip baseline']:.2f} us; ratio {us['quantize+dequantize'] / us['np.clip baseline']:.2f}")


if __name__ == "__main__":
    main()

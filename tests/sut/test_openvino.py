"""OpenVinoBackend against the real OpenVINO CPU plugin on small models built in conftest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlperf_ext.errors import ConfigError, ModelError, UnsupportedVariant
from sut.base import Backend, DeploymentOptions, create_backend
from sut.onnxruntime import OnnxRuntimeBackend

ov = pytest.importorskip("openvino")
from sut.openvino import OpenVinoBackend  # noqa: E402  (after the skip: needs the openvino extra)
from tests.sut.conftest import assert_user_error  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-4}  # f32 inference precision is requested, so f32 accuracy is expected


def _loaded(built, **kw) -> OpenVinoBackend:
    backend = OpenVinoBackend()
    backend.load(built.path, DeploymentOptions(**kw))
    return backend


def test_registry_creates_a_protocol_conforming_backend():
    backend = create_backend("openvino")
    assert isinstance(backend, OpenVinoBackend) and isinstance(backend, Backend)


def test_describe_reads_back_streams_threads_and_f32_precision(mlp_model):
    backend = _loaded(mlp_model, threads=2, streams=2, max_batch=8)
    d = backend.describe()
    assert d.runtime == "openvino" and d.version == ov.get_version() and d.device == "CPU"
    assert d.providers == ["CPU"]
    s = d.settings
    # Read back from the compiled model, not echoed from the request: this CPU defaults to bf16.
    assert s["INFERENCE_PRECISION_HINT"] == "float32"
    assert s["NUM_STREAMS"] == 2 and s["INFERENCE_NUM_THREADS"] == 2 and s["infer_requests"] == 2
    assert "bf16" not in s["runtime_precisions"] and "f32" in s["runtime_precisions"]
    assert backend.input_spec().shape == (None, 32)
    backend.close()


def test_capped_streams_are_reported_not_hidden(mlp_model):
    # INFERENCE_NUM_THREADS is a total over streams, so 1 thread cannot feed 2 streams.
    backend = _loaded(mlp_model, threads=1, streams=2, max_batch=4)
    s = backend.describe().settings
    assert s["requested"]["NUM_STREAMS"] == 2 and s["infer_requests"] == 2
    if s["NUM_STREAMS"] != 2:
        assert any(f"NUM_STREAMS to {s['NUM_STREAMS']} instead of the requested 2" in n for n in s["notes"])
    x = mlp_model.batch(4)
    for k in range(2):  # both requests still run, whatever the plugin made of the streams
        np.testing.assert_allclose(backend.infer(x, stream=k), mlp_model.reference(x), **TOL)


@pytest.mark.parametrize("mode", ["LATENCY", "throughput"])
def test_performance_hint_from_operating_mode(mlp_model, mode):
    s = _loaded(mlp_model, streams=1, operating_mode=mode).describe().settings
    assert s["PERFORMANCE_HINT"] == mode.upper()
    assert s["NUM_STREAMS"] == 1  # the explicit stream count wins over the hint's own choice


def test_operating_mode_that_is_no_hint_is_noted(mlp_model):
    s = _loaded(mlp_model, operating_mode="maxn").describe().settings
    assert "PERFORMANCE_HINT" not in s["requested"]
    assert any("maxn" in note for note in s["notes"])


def test_fp16_model_precision_is_honest(fp16_model):
    backend = _loaded(fp16_model, max_batch=4)
    s = backend.describe().settings
    assert s["model_float_precision"] == "fp16"
    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert s["INFERENCE_PRECISION_HINT"] == "float16" and "f16" in s["runtime_precisions"]
    else:
        assert s["INFERENCE_PRECISION_HINT"] == "float32" and any("upcast" in n for n in s["notes"])
    x = fp16_model.batch(4)
    np.testing.assert_allclose(backend.infer(x), fp16_model.reference(x), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("n", [1, 8, 5])  # batch 1, max_batch, and a smaller last batch
def test_infer_matches_numpy_reference(mlp_model, n):
    backend = _loaded(mlp_model, max_batch=8)
    x = mlp_model.batch(n)
    out = backend.infer(x)
    assert out.shape == (n, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, mlp_model.reference(x), **TOL)


def test_dynamic_batch_sizes_in_turn(conv_model):
    backend = _loaded(conv_model, max_batch=6)
    for n in (1, 6, 4, 1, 6):  # shapes change between calls on the same request
        x = conv_model.batch(n, seed=n)
        np.testing.assert_allclose(backend.infer(x), conv_model.reference(x), **TOL)


def test_time_compute_returns_one_positive_time_per_iteration(conv_model):
    backend = _loaded(conv_model, max_batch=4)
    times = backend.time_compute(conv_model.batch(4), iterations=5)
    assert len(times) == 5 and all(isinstance(t, float) and t > 0 for t in times)
    assert len(backend.time_compute(conv_model.batch(1), iterations=2)) == 2  # another shape, same request
    x = conv_model.batch(3)
    np.testing.assert_allclose(backend.infer(x), conv_model.reference(x), **TOL)


def test_concurrent_streams_give_correct_results(mlp_model):
    streams = 2
    backend = _loaded(mlp_model, streams=streams, max_batch=16)
    batches = [mlp_model.batch(16 - 5 * s, seed=s) for s in range(streams)]

    def work(k: int) -> list[np.ndarray]:
        return [backend.infer(batches[k], stream=k) for _ in range(20)]

    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(work, range(streams)))
    for k, outs in enumerate(results):
        for out in outs:
            np.testing.assert_allclose(out, mlp_model.reference(batches[k]), **TOL)
    with pytest.raises(ValueError):
        backend.infer(batches[0], stream=streams)


def test_fixed_batch_model_refuses_other_batch(fixed_batch_model):
    with pytest.raises(ModelError) as info:
        _loaded(fixed_batch_model, max_batch=2)
    assert "takes batch 1 only" in assert_user_error(info.value)
    x = fixed_batch_model.batch(1)
    np.testing.assert_allclose(_loaded(fixed_batch_model).infer(x), fixed_batch_model.reference(x), **TOL)


def test_missing_and_corrupt_model_files(missing_model, corrupt_model):
    for path, words in ((missing_model, "does not exist"), (corrupt_model, "not a readable ONNX model")):
        with pytest.raises(ModelError) as info:
            OpenVinoBackend().load(path, DeploymentOptions())
        assert words in assert_user_error(info.value)


def test_unavailable_device_is_refused_without_fallback(mlp_model):
    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an OpenVINO GPU device")
    with pytest.raises(ConfigError) as info:
        OpenVinoBackend().load(mlp_model.path, DeploymentOptions(device="gpu"))
    assert "no device 'gpu'" in assert_user_error(info.value)
    with pytest.raises(ConfigError):
        OpenVinoBackend().load(mlp_model.path, DeploymentOptions(device="auto"))


def test_int2_model_is_refused_by_openvino_and_run_by_onnxruntime(int2_model):
    with pytest.raises(UnsupportedVariant) as info:
        OpenVinoBackend().load(int2_model.path, DeploymentOptions(max_batch=4))
    msg = assert_user_error(info.value)
    assert msg.startswith(f"openvino cannot run {int2_model.path}: ")
    assert "Unsupported type" in msg and msg.endswith("fix: use onnxruntime for INT2 variants")

    ort_backend = OnnxRuntimeBackend()
    ort_backend.load(int2_model.path, DeploymentOptions(max_batch=4))
    x = int2_model.batch(4)
    ref = int2_model.reference(x)
    # ORT's optimiser fuses DequantizeLinear+MatMul into a low-precision kernel (measured max error
    # ~1e-3 relative), so the tolerance is relative to the output scale; wrong INT2 unpacking is O(1).
    np.testing.assert_allclose(ort_backend.infer(x), ref, rtol=0, atol=0.01 * np.abs(ref).max())

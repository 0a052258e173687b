"""OpenVinoBackend against the real OpenVINO CPU plugin on small models built in conftest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlperf_ext.errors import ConfigError, ModelError, UnsupportedVariant
from sut.base import Backend, DeploymentOptions
from sut.model_file import inspect_model
from sut.onnxruntime import OnnxRuntimeBackend
from sut.registry import create_backend

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
        assert any(f"NUM_STREAMS to {s['NUM_STREAMS']} instead of the requested 2" in n for n in backend.describe().notes)
    x = mlp_model.batch(4)
    for k in range(2):  # both requests still run, whatever the plugin made of the streams
        np.testing.assert_allclose(backend.infer(x, stream=k), mlp_model.reference(x), **TOL)


@pytest.mark.parametrize("mode", ["LATENCY", "throughput"])
def test_performance_hint_from_operating_mode(mlp_model, mode):
    s = _loaded(mlp_model, streams=1, operating_mode=mode).describe().settings
    assert s["PERFORMANCE_HINT"] == mode.upper()
    assert s["NUM_STREAMS"] == 1  # the explicit stream count wins over the hint's own choice


def test_operating_mode_that_is_no_hint_is_noted(mlp_model):
    d = _loaded(mlp_model, operating_mode="maxn").describe()
    assert "PERFORMANCE_HINT" not in d.settings["requested"]
    assert any("maxn" in note for note in d.notes)


def test_fp16_model_precision_is_honest(fp16_model):
    backend = _loaded(fp16_model, max_batch=4)
    s = backend.describe().settings
    assert s["model_float_precision"] == "fp16"
    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert s["INFERENCE_PRECISION_HINT"] == "float16" and "f16" in s["runtime_precisions"]
    else:
        assert s["INFERENCE_PRECISION_HINT"] == "float32" and any("upcast" in n for n in backend.describe().notes)
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


def test_compute_step_reads_the_request_output_in_place_and_the_system_path_copies_it(conv_model):
    """The compute boundary: the input tensor is set once and each step only executes, leaving the
    output in the request's own buffer; the system path sets the input and copies the output out."""
    backend = _loaded(conv_model, max_batch=4)
    x = conv_model.batch(4)
    step = backend.compute_step(x)
    request = backend._requests[0]
    out_ptr = request.get_output_tensor(0).data.ctypes.data
    assert all(step() > 0 for _ in range(5))
    assert request.get_output_tensor(0).data.ctypes.data == out_ptr
    np.testing.assert_allclose(request.get_output_tensor(0).data, conv_model.reference(x), **TOL)
    out = backend.infer(conv_model.batch(3))
    assert not np.shares_memory(out, request.get_output_tensor(0).data)
    np.testing.assert_allclose(out, conv_model.reference(conv_model.batch(3)), **TOL)
    assert backend.compute_step(conv_model.batch(1))() > 0  # another shape on the same request


def test_int8_variant_really_runs_in_int8(int8_model):
    d = _loaded(int8_model, max_batch=4).describe()
    assert (d.precision, d.compute_dtype) == ("int8", "int8")  # read from the runtime model's FullyConnected


def test_exec_precision_bf16_is_applied_and_read_back(mlp_model):
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        reason = OpenVinoBackend.supports(inspect_model(mlp_model.path), DeploymentOptions(exec_precision="bf16"))
        assert "no native BF16" in reason
        return
    d = _loaded(mlp_model, max_batch=4, exec_precision="bf16").describe()
    assert d.settings["INFERENCE_PRECISION_HINT"] == "bfloat16"
    assert (d.precision, d.compute_dtype) == ("bf16", "bf16")
    assert _loaded(mlp_model, max_batch=4).describe().compute_dtype == "fp32"  # the default stays the model's


def test_exec_precision_the_cpu_lacks_is_refused(mlp_model):
    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has native FP16 kernels")
    with pytest.raises(UnsupportedVariant) as info:
        _loaded(mlp_model, exec_precision="fp16")
    assert "no native FP16 kernels" in assert_user_error(info.value)


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
    with pytest.raises(IndexError):
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
    assert "INT2" in OpenVinoBackend.supports(inspect_model(int2_model.path), DeploymentOptions())

    ort_backend = OnnxRuntimeBackend()
    ort_backend.load(int2_model.path, DeploymentOptions(max_batch=4))
    x = int2_model.batch(4)
    ref = int2_model.reference(x)
    # ORT's optimiser fuses DequantizeLinear+MatMul into a low-precision kernel (measured max error
    # ~1e-3 relative), so the tolerance is relative to the output scale; wrong INT2 unpacking is O(1).
    np.testing.assert_allclose(ort_backend.infer(x), ref, rtol=0, atol=0.01 * np.abs(ref).max())


def test_fused_batchnorm_is_said_in_the_row(conv_bn_model):
    d = _loaded(conv_bn_model, max_batch=2).describe()
    assert any("BatchNormalization" in n and "fused" in n for n in d.notes)
    assert sum(d.settings["runtime_layer_types"].values()) > 0


def test_int4_weights_under_dynamic_quantization_are_named_int8(tmp_path):
    """OpenVINO's CPU plugin quantizes a compressed-weight FullyConnected's activations at run time when
    DYNAMIC_QUANTIZATION_GROUP_SIZE > 0: the row names int8, and fp32 once the group is 0."""
    import onnx
    import openvino as ov

    from sut.openvino import executed_precision
    from tiers.micro.kernels import GemmShape, build_model

    path = tmp_path / "nbits.onnx"
    onnx.save(build_model(GemmShape(256, 8, 256), "nbits"), path)
    core = ov.Core()
    named = {}
    for group in (32, 0):
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "DYNAMIC_QUANTIZATION_GROUP_SIZE": group})
        if int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) != group:
            pytest.skip("this OpenVINO does not honour DYNAMIC_QUANTIZATION_GROUP_SIZE")
        named[group] = executed_precision(compiled)
    assert named[32][1] == "int8" and "int8 with int4 weights" in named[32][0] and "groups of 32" in named[32][0]
    assert named[0] == ("fp32 with int4 weights", "fp32")

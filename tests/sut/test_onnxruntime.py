"""OnnxRuntimeBackend against real ONNX Runtime sessions on small models built in conftest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlperf_ext.errors import ConfigError, ModelError
from sut.base import Backend, DeploymentOptions
from sut.model_file import inspect_model
from sut.onnxruntime import OnnxRuntimeBackend, split_threads
from sut.registry import create_backend
from tests.sut.conftest import assert_user_error  # noqa: E402

ort = pytest.importorskip("onnxruntime")


def _loaded(built, **kw) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend()
    backend.load(built.path, DeploymentOptions(**kw))
    return backend


def test_registry_creates_a_protocol_conforming_backend():
    backend = create_backend("onnxruntime")
    assert isinstance(backend, OnnxRuntimeBackend) and isinstance(backend, Backend)
    assert backend.name == "onnxruntime"


def test_describe_records_provider_threads_and_streams(mlp_model):
    backend = _loaded(mlp_model, threads=3, streams=2, max_batch=8)
    d = backend.describe()
    assert d.runtime == "onnxruntime" and d.version == ort.__version__ and d.device == "cpu"
    assert d.providers == ["CPUExecutionProvider"]
    # one session per stream, each with its share of the threads, read back from the sessions
    assert d.settings["intra_op_num_threads"] == [2, 1] and d.settings["stream_sessions"] == 2
    assert d.settings["execution_mode"] == "ORT_SEQUENTIAL"
    assert d.settings["streams"] == 2
    assert d.settings["model_float_precision"] == "fp32"
    assert d.to_dict()["providers"] == ["CPUExecutionProvider"]
    spec = backend.input_spec()
    assert (spec.name, spec.shape, spec.dtype) == ("x", (None, 32), "float32")
    backend.close()


def test_default_threads_left_to_runtime(mlp_model):
    assert _loaded(mlp_model).describe().settings["intra_op_num_threads"] == [0]  # 0 = ORT default


def test_threads_are_split_across_streams():
    assert split_threads(None, 1) == [None]
    assert split_threads(4, 1) == [4]
    assert split_threads(4, 2) == [2, 2] and split_threads(5, 2) == [3, 2]
    assert split_threads(2, 4) == [1, 1, 1, 1]  # never fewer than one thread per stream session


@pytest.mark.parametrize("n", [1, 8, 5])  # batch 1, max_batch, and a smaller last batch
def test_infer_matches_numpy_reference(mlp_model, n):
    backend = _loaded(mlp_model, max_batch=8)
    x = mlp_model.batch(n)
    out = backend.infer(x)
    assert out.shape == (n, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, mlp_model.reference(x), rtol=1e-4, atol=1e-4)


def test_conv_net_matches_numpy_reference(conv_model):
    backend = _loaded(conv_model, max_batch=4)
    for n in (4, 3, 1):
        x = conv_model.batch(n, seed=n)
        np.testing.assert_allclose(backend.infer(x), conv_model.reference(x), rtol=1e-4, atol=1e-4)


def test_compute_step_runs_on_bound_buffers_that_the_system_path_does_not_use(mlp_model):
    """The compute boundary: input and outputs are bound once; each step only executes into the same
    output buffer, and computes what the model computes. The system path returns a new host array."""
    backend = _loaded(mlp_model, max_batch=8)
    x = mlp_model.batch(8)
    step = backend.compute_step(x)
    _x_value, io = step.keep_alive
    out_ptr = io.get_outputs()[0].data_ptr()
    assert all(step() > 0 for _ in range(5))
    assert io.get_outputs()[0].data_ptr() == out_ptr  # no output allocated by a timed step
    np.testing.assert_allclose(io.get_outputs()[0].numpy(), mlp_model.reference(x), rtol=1e-4, atol=1e-4)
    first, second = backend.infer(x), backend.infer(x)
    assert not np.shares_memory(first, second)  # the system path allocates its result every call
    np.testing.assert_allclose(first, mlp_model.reference(x), rtol=1e-4, atol=1e-4)


def test_concurrent_streams_give_correct_results(mlp_model):
    streams = 3
    backend = _loaded(mlp_model, streams=streams, max_batch=16)
    batches = [mlp_model.batch(16, seed=s) for s in range(streams)]

    def work(k: int) -> list[np.ndarray]:
        return [backend.infer(batches[k], stream=k) for _ in range(20)]

    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(work, range(streams)))
    for k, outs in enumerate(results):
        for out in outs:
            np.testing.assert_allclose(out, mlp_model.reference(batches[k]), rtol=1e-4, atol=1e-4)
    with pytest.raises(IndexError):
        backend.infer(batches[0], stream=streams)


def test_fixed_batch_model_refuses_other_batch(fixed_batch_model):
    with pytest.raises(ModelError) as info:
        _loaded(fixed_batch_model, max_batch=4)
    msg = assert_user_error(info.value)
    assert "takes batch 1 only" in msg and "--batch 1" in msg and str(fixed_batch_model.path) in msg
    backend = _loaded(fixed_batch_model, max_batch=1)
    x = fixed_batch_model.batch(1)
    np.testing.assert_allclose(backend.infer(x), fixed_batch_model.reference(x), rtol=1e-4, atol=1e-4)


def test_missing_model_file(missing_model):
    with pytest.raises(ModelError) as info:
        OnnxRuntimeBackend().load(missing_model, DeploymentOptions())
    assert "does not exist" in assert_user_error(info.value)


def test_corrupt_model_file(corrupt_model):
    with pytest.raises(ModelError) as info:
        OnnxRuntimeBackend().load(corrupt_model, DeploymentOptions())
    assert "not a readable ONNX model" in assert_user_error(info.value)


def test_unknown_device_is_refused(mlp_model):
    with pytest.raises(ConfigError) as info:
        OnnxRuntimeBackend().load(mlp_model.path, DeploymentOptions(device="tpu"))
    assert "cpu, cuda, tensorrt" in assert_user_error(info.value)


@pytest.mark.parametrize("device,provider", [("cuda", "CUDAExecutionProvider"),
                                             ("tensorrt", "TensorrtExecutionProvider")])
def test_gpu_provider_missing_names_the_fix(mlp_model, device, provider):
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is installed here")
    with pytest.raises(ConfigError) as info:
        OnnxRuntimeBackend().load(mlp_model.path, DeploymentOptions(device=device))
    msg = assert_user_error(info.value)
    assert provider in msg and "onnxruntime-gpu" in msg


def test_use_before_load_is_a_programming_error(mlp_model):
    with pytest.raises(RuntimeError):
        OnnxRuntimeBackend().infer(mlp_model.batch(1))


def test_model_precision_is_read_from_the_weights(mlp_model, fp16_model, int2_model):
    assert inspect_model(mlp_model.path).float_precision == "fp32"
    fp16 = inspect_model(fp16_model.path)
    assert fp16.float_precision == "fp16" and fp16.input.dtype == "float32"  # keep_io_types
    int2 = inspect_model(int2_model.path)
    assert int2.float_precision == "fp32" and "int2" in int2.weight_types


def test_fp16_model_runs_and_is_recorded(fp16_model):
    backend = _loaded(fp16_model, max_batch=4)
    d = backend.describe()
    assert d.settings["model_float_precision"] == "fp16"
    # ORT's CPU provider has no fp16 Gemm: it casts, and the profiler shows the Gemm ran on float
    assert (d.precision, d.compute_dtype) == ("fp32 (fp16 weights upcast)", "fp32")
    x = fp16_model.batch(4)
    np.testing.assert_allclose(backend.infer(x), fp16_model.reference(x), rtol=2e-2, atol=2e-2)


def test_executed_precision_is_read_back_not_labelled(mlp_model, int2_model, int8_model):
    assert (_loaded(mlp_model).describe().precision, _loaded(mlp_model).describe().compute_dtype) == ("fp32", "fp32")
    # ORT fuses this DequantizeLinear(int2) + MatMul into MatMulNBits(bits=2) and sets accuracy_level 4
    int2 = _loaded(int2_model).describe()
    assert (int2.precision, int2.compute_dtype) == ("int8 with int2 weights", "int8")
    int8 = _loaded(int8_model).describe()
    assert (int8.precision, int8.compute_dtype) == ("int8", "int8")


def test_exec_precision_other_than_the_model_is_refused(mlp_model):
    reason = OnnxRuntimeBackend.supports(inspect_model(mlp_model.path), DeploymentOptions(exec_precision="bf16"))
    assert "cannot execute in 'bf16'" in reason
    with pytest.raises(ConfigError):
        _loaded(mlp_model, exec_precision="bf16")



def test_short_last_batch_is_padded_for_a_fixed_batch_model(fixed_batch4_model):
    backend = _loaded(fixed_batch4_model, max_batch=4)
    x = fixed_batch4_model.batch(3)
    out = backend.infer(x)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, fixed_batch4_model.reference(x), rtol=1e-4, atol=1e-4)
    assert backend.compute_step(x)() > 0  # the compute path pads the short batch once, outside the timing
    with pytest.raises(ModelError):
        backend.infer(fixed_batch4_model.batch(5))


def test_graph_optimization_level_is_an_option_and_the_row_says_what_it_fused(conv_bn_model):
    fused = _loaded(conv_bn_model, runtime_options={"graph_optimization_level": "all"}).describe()
    assert fused.settings["graph_changes"]["op_counts_changed"]["BatchNormalization"] == [1, 0]
    assert any("left 0 of the model's 1 BatchNormalization" in n for n in fused.notes)
    kept = _loaded(conv_bn_model, runtime_options={"graph_optimization_level": "disabled"})
    d = kept.describe()
    assert d.settings["graph_optimization_level"] == "ORT_DISABLE_ALL"
    assert "BatchNormalization" not in d.settings["graph_changes"]["op_counts_changed"] and d.notes == []
    x = conv_bn_model.batch(2)
    np.testing.assert_allclose(kept.infer(x), conv_bn_model.reference(x), rtol=1e-4, atol=1e-4)


def test_unknown_runtime_options_are_refused(mlp_model):
    with pytest.raises(ConfigError, match="no runtime option 'fusion'"):
        _loaded(mlp_model, runtime_options={"fusion": "off"})
    with pytest.raises(ConfigError, match="is not one of disabled, basic, extended, all"):
        _loaded(mlp_model, runtime_options={"graph_optimization_level": "max"})


def test_a_gpu_device_needs_a_driver_not_only_the_providers(monkeypatch):
    """onnxruntime-gpu lists CUDA/TensorRT providers on any host; the driver (NVML, real here) must answer."""
    import onnxruntime as ort

    from sut.onnxruntime import OnnxRuntimeBackend

    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this host has an NVIDIA driver: the refusal under test is for hosts without one")
    except pynvml.NVMLError:
        pass
    # the provider list of an onnxruntime-gpu wheel (this CPU wheel cannot have it): everything else is real
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    for device in ("cuda", "tensorrt:0"):
        with pytest.raises(ConfigError, match="no NVIDIA driver answers on this host"):
            OnnxRuntimeBackend.check_device(device)


def test_heavy_kernels_on_the_cpu_provider_are_found_in_real_profiler_events(tmp_path):
    """The profiler of a real CPU session names each kernel's provider: on a GPU device these would be a
    silent fallback (refused at load); here the reader is checked on the events ORT really writes."""
    import json

    import numpy as np
    import onnxruntime as ort

    from sut.onnxruntime import heavy_kernels_on_cpu
    from tests.harness.conftest import make_mlp

    model = make_mlp(tmp_path / "mlp.onnx")
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    session.run(None, {"input": np.zeros((1, 784), np.float32)})
    events = json.loads(open(session.end_profiling()).read())
    kernels = [e["args"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    found = heavy_kernels_on_cpu(kernels)
    assert found and all(op in ("Gemm", "FusedGemm") for op in found)
    assert heavy_kernels_on_cpu([{**k, "provider": "CUDAExecutionProvider"} for k in kernels]) == []


def test_tensorrt_ep_keeps_its_engines_on_disk(monkeypatch, tmp_path):
    from sut.onnxruntime import provider_options

    monkeypatch.setenv("MLPERF_EXT_TENSORRT_CACHE", str(tmp_path))
    trt = provider_options("TensorrtExecutionProvider", 1)
    assert trt["device_id"] == 1 and trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"].startswith(str(tmp_path))
    assert provider_options("CUDAExecutionProvider", 0) == {"device_id": 0}


# -- QDQ graphs ORT's CUDA/TensorRT providers cannot run (issue 21), refused before a session starts -------
def _qdq_model(path, *, bias_int32=False, int4_activations=False, int4_weights=False):
    """x -> [Q/DQ] -> MatMul(DQ(w)) [+ DQ(int32 bias)] -> y: the smallest graph with each QDQ shape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    act_type = TensorProto.INT4 if int4_activations else TensorProto.INT8
    w_type = TensorProto.INT4 if int4_weights else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             helper.make_tensor("act_zp", act_type, [], [0]),
             helper.make_tensor("w", w_type, [4, 2], [1] * 8), helper.make_tensor("w_zp", w_type, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "act_zp"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "act_zp"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "s", "w_zp"], ["wd"], name="dq_w"),
             helper.make_node("MatMul", ["xd", "wd"], ["mm"], name="mm")]
    if bias_int32:
        inits += [helper.make_tensor("b", TensorProto.INT32, [2], [3, 4]),
                  helper.make_tensor("b_zp", TensorProto.INT32, [], [0])]
        nodes += [helper.make_node("DequantizeLinear", ["b", "s", "b_zp"], ["bd"], name="dq_bias"),
                  helper.make_node("Add", ["mm", "bd"], ["y"], name="add")]
    else:
        nodes.append(helper.make_node("Identity", ["mm"], ["y"]))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


@pytest.mark.parametrize("device", ["cuda", "tensorrt", "cuda:1"])
@pytest.mark.parametrize("kw, words", [
    ({"bias_int32": True}, "int32 bias"),
    ({"int4_activations": True}, "activations to INT4"),
])
def test_gpu_providers_refuse_qdq_they_cannot_run(tmp_path, device, kw, words):
    info = inspect_model(_qdq_model(tmp_path / "m.onnx", **kw))
    reason = OnnxRuntimeBackend.supports(info, DeploymentOptions(device=device))
    assert reason and words in reason and "fix:" in reason and "\n" not in reason


@pytest.mark.parametrize("kw", [{}, {"int4_weights": True}])
def test_gpu_providers_take_int8_qdq_and_int4_weight_only(tmp_path, kw):
    info = inspect_model(_qdq_model(tmp_path / "m.onnx", **kw))
    assert OnnxRuntimeBackend.supports(info, DeploymentOptions(device="cuda")) is None


def test_cpu_provider_is_not_refused_the_int32_bias(tmp_path):
    info = inspect_model(_qdq_model(tmp_path / "m.onnx", bias_int32=True))
    assert OnnxRuntimeBackend.supports(info, DeploymentOptions(device="cpu")) is None

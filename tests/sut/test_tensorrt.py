"""TensorRtBackend: what runs without a GPU (device strings, refusals through the real import machinery,
cache keys, profile shapes, graph refusals, the inspector-JSON reader) and, marked `gpu`, the engine
itself on a small model against onnxruntime on CPU.

The GPU tests skip with the reason found on this host (no nvidia-smi, no wheel, no driver); this
project's own machines have none, so there they never run.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError, UnsupportedVariant
from sut.base import Backend, DeploymentOptions, TensorSpec
from sut.model_file import inspect_model
from sut.registry import backend_class, check_backend
from sut.tensorrt import (
    BUILD_RECIPE,
    CACHE_ENV,
    CudaError,
    Profile,
    TensorRtBackend,
    cache_dir,
    check_tensorrt_version,
    cuda_call,
    cuda_version,
    engine_cache_key,
    engine_key_inputs,
    executed_precision,
    format_dtype,
    graph_refusal,
    inspect_layers,
    numpy_dtype,
    parse_device,
    probe_gpu,
    profile_shapes,
    set_tf32,
)
from tests.sut.conftest import assert_user_error, build_convnet, build_mlp

REF = "sut.tensorrt:TensorRtBackend"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA_PYTHON = importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None


def _gpu_skip_reason() -> str | None:
    """Why the GPU tests cannot run here, found for real (None when they can)."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU/driver: nvidia-smi not found"
    if not HAS_CUDA_PYTHON:
        return "cuda-python not installed (pip install 'mlperf-ext[tensorrt]')"
    if not HAS_TENSORRT:
        return "tensorrt not installed (pip install 'mlperf-ext[tensorrt]')"
    try:
        probe_gpu(0)
    except (ConfigError, BackendUnavailable) as exc:
        return str(exc)
    return None


GPU_SKIP = _gpu_skip_reason()
needs_gpu = pytest.mark.skipif(GPU_SKIP is not None, reason=GPU_SKIP or "")


# -- class and registry ----------------------------------------------------------------------------
def test_class_is_a_backend_with_its_facts():
    cls = backend_class(REF)
    assert cls is TensorRtBackend and isinstance(cls(), Backend)
    assert (cls.name, cls.extra, cls.runtime_module, cls.exec_precisions) == ("tensorrt", "tensorrt", "tensorrt",
                                                                              ("model", "tf32"))


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_missing_wheel_is_refused_naming_the_extra(mlp_model):
    """The registry's find_spec check and load()'s import both name the pip extra, in one line."""
    with pytest.raises(BackendUnavailable) as exc:
        check_backend(REF)
    assert "mlperf-ext[tensorrt]" in assert_user_error(exc.value) and exc.value.extra == "tensorrt"
    with pytest.raises(BackendUnavailable) as exc:
        TensorRtBackend().load(mlp_model.path, DeploymentOptions(device="cuda"))
    assert "mlperf-ext[tensorrt]" in assert_user_error(exc.value)


@pytest.mark.skipif(GPU_SKIP is None, reason="this host has a usable NVIDIA GPU")
def test_check_device_refuses_this_gpu_less_host():
    """Without cuda-python: the extra; with it but without a driver or GPU: a ConfigError naming the fix."""
    expected = ConfigError if HAS_CUDA_PYTHON else BackendUnavailable
    with pytest.raises(expected) as exc:
        TensorRtBackend.check_device("cuda")
    msg = assert_user_error(exc.value)
    if HAS_CUDA_PYTHON:
        assert "NVIDIA" in msg and "nvidia-smi" in msg
    else:
        assert "cuda-python" in msg and "mlperf-ext[tensorrt]" in msg


# -- device strings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("device, index", [("cuda", 0), ("cuda:0", 0), ("CUDA:3", 3), (" cuda:12 ", 12)])
def test_cuda_device_strings(device, index):
    assert parse_device(device) == index


@pytest.mark.parametrize("device", ["cpu", "gpu", "tensorrt", "cuda:x", "cuda:", "cuda:-1", "npu:0"])
def test_other_devices_are_refused_before_anything_runs(device):
    with pytest.raises(ConfigError) as exc:
        TensorRtBackend.check_device(device)
    assert "--device cuda" in assert_user_error(exc.value)


# -- the GPU probe, on a stand-in for the CUDA runtime this machine lacks --------------------------------
class _Err:
    def __init__(self, code: int):
        self.code = code

    def __int__(self) -> int:
        return self.code


class FakeCudaRuntime:
    """Answers the cuda.bindings.runtime calls probe_gpu makes, as a host with `count` GPUs would."""

    def __init__(self, count: int = 1, driver: int = 13000, runtime: int = 13040, count_error: int = 0):
        self.count, self.driver, self.runtime, self.count_error = count, driver, runtime, count_error

    def cudaDriverGetVersion(self):
        return _Err(0), self.driver

    def cudaRuntimeGetVersion(self):
        return _Err(0), self.runtime

    def cudaGetDeviceCount(self):
        return (_Err(self.count_error), None) if self.count_error else (_Err(0), self.count)

    def cudaGetErrorName(self, err):
        return _Err(0), b"cudaErrorInsufficientDriver" if int(err) == 35 else b"cudaErrorUnknown"

    def cudaGetErrorString(self, err):
        return _Err(0), b"CUDA driver version is insufficient for CUDA runtime version"

    def cudaGetDeviceProperties(self, index):
        class Props:
            name = b"NVIDIA H200\x00\x00"
            major, minor, totalGlobalMem, multiProcessorCount = 9, 0, 150 * 2**30, 132

        return _Err(0), Props()


def test_probe_reads_the_gpu():
    gpu = probe_gpu(0, FakeCudaRuntime())
    assert (gpu.name, gpu.compute_capability, gpu.multiprocessors) == ("NVIDIA H200", "9.0", 132)
    assert (gpu.cuda_runtime, gpu.cuda_driver) == ("13.4", "13.0")


@pytest.mark.parametrize("fake, words", [
    (FakeCudaRuntime(driver=0, count_error=35), "no NVIDIA driver"),
    (FakeCudaRuntime(driver=12020, count_error=35), "needs a driver for CUDA 13.0 or newer"),
    (FakeCudaRuntime(driver=13000, count_error=35), "install a driver for CUDA 13.4"),
    (FakeCudaRuntime(count=0), "sees no NVIDIA GPU"),
])
def test_probe_says_what_is_missing(fake, words):
    with pytest.raises(ConfigError) as exc:
        probe_gpu(0, fake)
    assert words in assert_user_error(exc.value)


def test_probe_refuses_an_index_out_of_range():
    with pytest.raises(ConfigError) as exc:
        probe_gpu(2, FakeCudaRuntime(count=2))
    assert "cuda:N with N in 0..1" in assert_user_error(exc.value)


def test_cuda_call_raises_on_error_and_unwraps_values():
    rt = FakeCudaRuntime()
    assert cuda_call(rt, (_Err(0), 7), "x") == 7 and cuda_call(rt, (_Err(0),), "x") is None
    with pytest.raises(CudaError, match="cudaMalloc failed .*cudaErrorUnknown"):
        cuda_call(rt, (_Err(2), None), "cudaMalloc")
    assert (cuda_version(13040), cuda_version(12080), cuda_version(0)) == ("13.4", "12.8", "none")


# -- profile shapes and the engine cache ------------------------------------------------------------
def test_profile_spans_batch_one_to_the_points_batch():
    p = profile_shapes(TensorSpec("input", (None, 3, 224, 224), "float32"), 32)
    assert p == Profile("input", (1, 3, 224, 224), (32, 3, 224, 224), (32, 3, 224, 224))


def test_fixed_batch_is_its_own_profile():
    p = profile_shapes(TensorSpec("x", (4, 32), "float32"), 4)
    assert p.min == p.opt == p.max == (4, 32)


@pytest.mark.parametrize("shape", [(None, None, 32), (None, 3, None, 8), ()])
def test_shapes_tensorrt_cannot_profile_are_model_errors(shape):
    with pytest.raises(ModelError) as exc:
        profile_shapes(TensorSpec("x", shape, "float32"), 8)
    assert_user_error(exc.value)


KEY_INPUTS = {"model_sha256": "a" * 64, "tensorrt_version": "11.4.0.106", "gpu_name": "NVIDIA H200",
              "compute_capability": "9.0", "profile": Profile("x", (1, 32), (8, 32), (8, 32))}


def key_of(**inputs) -> str:
    return engine_cache_key(engine_key_inputs(**inputs))


def test_cache_key_is_stable_for_the_same_inputs():
    assert key_of(**KEY_INPUTS) == key_of(**dict(KEY_INPUTS))
    assert len(key_of(**KEY_INPUTS)) == 64


@pytest.mark.parametrize("field, other", [
    ("model_sha256", "b" * 64), ("tensorrt_version", "11.4.1.2"), ("gpu_name", "NVIDIA H100 80GB HBM3"),
    ("compute_capability", "8.9"), ("profile", Profile("x", (1, 32), (16, 32), (16, 32))),
    ("profile", Profile("y", (1, 32), (8, 32), (8, 32))), ("tf32_allowed", True),
])
def test_cache_key_changes_with_each_input(field, other):
    assert key_of(**{**KEY_INPUTS, field: other}) != key_of(**KEY_INPUTS)


def test_cache_key_changes_with_the_build_recipe():
    assert key_of(**KEY_INPUTS, recipe=BUILD_RECIPE + 1) != key_of(**KEY_INPUTS)


def test_cache_dir_from_environment_or_home(tmp_path):
    assert cache_dir({CACHE_ENV: str(tmp_path)}) == tmp_path
    assert cache_dir({}) == Path("~/.cache/mlperf-ext/tensorrt").expanduser()


# -- what TensorRT is refused -----------------------------------------------------------------------
def test_model_precision_only():
    reason = TensorRtBackend.supports(None, DeploymentOptions(device="cuda", exec_precision="fp16"))
    assert reason and "--exec-precision model" in reason


def test_fp32_and_fp16_models_are_not_refused(mlp_model, fp16_model):
    for built in (mlp_model, fp16_model):
        assert TensorRtBackend.supports(inspect_model(built.path), DeploymentOptions(device="cuda")) is None


def test_int2_is_refused_with_the_reason(int2_model):
    reason = TensorRtBackend.supports(inspect_model(int2_model.path), DeploymentOptions(device="cuda"))
    assert reason and "no 2-bit type" in reason and "fix:" in reason


def test_contrib_ops_are_refused(tmp_path):
    """MatMulNBits (the zoo's int4 for MLPs) lives in ONNX Runtime's com.microsoft domain."""
    w = numpy_helper.from_array(np.zeros((4, 8), np.uint8), "w")
    node = helper.make_node("MatMulNBits", ["x", "w"], ["y"], domain="com.microsoft", K=16, N=4, bits=4,
                            block_size=16)
    graph = helper.make_graph([node], "nbits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    path = tmp_path / "nbits.onnx"
    onnx.save(model, str(path))
    reason = graph_refusal(path)
    assert reason and "com.microsoft.MatMulNBits" in reason


def test_asymmetric_int8_is_refused(int8_model):
    """The zoo's INT8 recipe (ORT QDQ, QUInt8 activations) has non-zero zero points."""
    reason = TensorRtBackend.supports(inspect_model(int8_model.path), DeploymentOptions(device="cuda"))
    assert reason and "non-zero zero point" in reason


def symmetric_int8(built, path: Path) -> Path:
    """The MLP as QDQ INT8 TensorRT can import: signed int8, symmetric activations and weights."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    calib = built.batch(64, seed=9)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": calib[i:i + 16]} for i in range(0, len(calib), 16)])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(built.path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    return path


@pytest.mark.parametrize("builder", [build_mlp, build_convnet])
def test_symmetric_int8_is_not_refused(tmp_path, builder):
    built = builder(tmp_path / "m.onnx")
    assert graph_refusal(symmetric_int8(built, tmp_path / "m8.onnx")) is None


# -- reading the engine inspector's JSON --------------------------------------------------------------
@pytest.mark.parametrize("text, dtype", [
    ("Row major linear FP32", "fp32"), ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Thirty-two wide channel vectorized row major Int8 format", "int8"), ("Half", "fp16"), ("Float", "fp32"),
    ("Row major linear BFloat16 format", "bf16"), ("Row major linear FP8 format", "fp8"), ("Unknown format", ""),
])
def test_format_strings_name_their_datatype(text, dtype):
    assert format_dtype(text) == dtype


def _layer(name, ptype, ltype, fmt, weights=None, tactic=""):
    layer = {"Name": name, "LayerType": ltype, "Inputs": [{"Name": "in", "Format/Datatype": fmt}],
             "Outputs": [{"Name": "out", "Format/Datatype": fmt}], "TacticName": tactic}
    if ptype:
        layer["ParameterType"] = ptype
    if weights:
        layer["Weights"] = {"Type": weights, "Count": 10}
    return layer


def test_inspector_json_gives_the_heavy_layers_precision():
    """Key names as the engine inspector writes them with DETAILED verbosity (the format trex parses)."""
    doc = {"Layers": [
        _layer("conv1", "Convolution", "CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format",
               "Int8"),
        _layer("conv2", "Convolution", "CaskGemmConvolution", "Channel major Int8 format", "Int8"),
        _layer("pool", "Pooling", "CaskPooling", "Row major Int8 format"),
        _layer("fc", "MatrixMultiply", "CaskGemmMatrixMultiply", "Row major linear FP32", "Float", "sm90_tf32_gemm"),
        _layer("{ForeignNode[/fc2/MatMul]}", None, "Myelin", "Half"),
    ], "Bindings": ["x", "y"]}
    heavy, facts = inspect_layers(json.dumps(doc))
    assert [op.words for op in heavy] == ["int8", "int8", "fp32"]
    assert facts["layers"] == 5 and facts["tf32_tactics"] == 1 and facts["layer_types"]["Pooling"] == 1
    assert facts["fused_regions"] == 1 and facts["fused_regions_naming_heavy_ops"] == 1
    text, dtype = executed_precision(heavy, facts)
    assert dtype == "int8" and text.startswith("mixed: 2 of 3") and "1 fused Myelin regions" in text
    assert "TF32" in text


def test_a_fused_region_alone_is_unknown_not_its_boundary_type():
    """An FP16 model with float32 I/O enters its Myelin region in fp32: that is no evidence of fp32 math."""
    doc = {"Layers": [_layer("{ForeignNode[/fc1/MatMul.../fc2/Add]}", None, "Myelin", "Row major linear FP32")]}
    text, dtype = executed_precision(*inspect_layers(json.dumps(doc)))
    assert dtype == "" and text.startswith("unknown (1 fused Myelin regions")


def test_inspector_names_only_is_reported_not_guessed():
    heavy, facts = inspect_layers(json.dumps({"Layers": ["conv1", "fc"], "Bindings": []}))
    assert heavy == [] and "DETAILED" in facts["error"]


# -- on a GPU -------------------------------------------------------------------------------------
TOL = {"rtol": 2e-2, "atol": 2e-2}  # fp16 variants; fp32 runs without TF32 unless --exec-precision tf32


@pytest.fixture
def engine_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "engines"))
    return tmp_path / "engines"


def _ort_cpu(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("builder", [build_mlp, build_convnet])
def test_gpu_infer_matches_onnxruntime_cpu_on_every_stream(tmp_path, engine_cache, builder):
    built = builder(tmp_path / "model.onnx")
    backend = TensorRtBackend()
    backend.load(built.path, DeploymentOptions(device="cuda", streams=2, max_batch=8))
    try:
        for rows in (8, 3, 1):  # the profile's opt, a short batch, its min
            x = built.batch(rows, seed=rows)
            want = _ort_cpu(built.path, x)
            with ThreadPoolExecutor(2) as pool:
                got = list(pool.map(backend.infer, [x, x], range(2)))
            for out in got:
                assert out.shape == want.shape
                np.testing.assert_allclose(out, want, **TOL)
    finally:
        backend.close()


@pytest.mark.gpu
@needs_gpu
def test_gpu_compute_steps_return_gpu_seconds_on_all_streams(tmp_path, engine_cache):
    from tiers.runner.compute import measure_compute

    built = build_convnet(tmp_path / "conv.onnx")
    backend = TensorRtBackend()
    backend.load(built.path, DeploymentOptions(device="cuda", streams=2, max_batch=4))
    try:
        step = backend.compute_step(built.batch(4), 0)
        seconds = step()
        assert 0 < seconds < 1 and math.isfinite(seconds)
        timing = measure_compute(backend, built.batch(4), streams=2, seconds=0.2)
        assert timing.streams == 2 and len(timing.latencies_s) >= 20 and min(timing.latencies_s) > 0
        # the system path still gives the right answer after the compute steps bound their buffers
        np.testing.assert_allclose(backend.infer(built.batch(2), 1), _ort_cpu(built.path, built.batch(2)), **TOL)
    finally:
        backend.close()


def _fp16(built, path: Path) -> Path:
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(str(built.path)), keep_io_types=True), str(path))
    return path


@pytest.mark.gpu
@needs_gpu
def test_gpu_describe_reads_back_what_ran(tmp_path, engine_cache):
    """Versions and the GPU from CUDA; the heavy layers' types from the engine inspector, or 'unknown' with
    the fused regions named, never the variant's label."""
    import tensorrt as trt

    built = build_convnet(tmp_path / "conv.onnx")
    for path, dtype in ((built.path, "fp32"), (_fp16(built, tmp_path / "conv16.onnx"), "fp16"),
                        (symmetric_int8(built, tmp_path / "conv8.onnx"), "int8")):
        backend = TensorRtBackend()
        backend.load(path, DeploymentOptions(device="cuda", max_batch=4))
        try:
            d = backend.describe()
            np.testing.assert_allclose(backend.infer(built.batch(4), 0), _ort_cpu(path, built.batch(4)),
                                       rtol=0.1, atol=0.1)
        finally:
            backend.close()
        assert d.runtime == "tensorrt" and d.version == trt.__version__ and d.device == "cuda:0"
        s = d.settings
        assert s["gpu"] and s["compute_capability"] and s["cuda_runtime"] != "none" and s["cuda_driver"] != "none"
        assert s["engine_layers"]["layers"] > 0 and s["profile"]["max"][0] == 4
        if d.compute_dtype:
            assert d.compute_dtype == dtype, d.precision
        else:
            assert "fused Myelin regions" in d.precision, d.precision


@pytest.mark.gpu
@needs_gpu
def test_gpu_engine_cache_hit_on_the_second_load(tmp_path, engine_cache, capsys):
    built = build_mlp(tmp_path / "mlp.onnx")
    first, second = TensorRtBackend(), TensorRtBackend()
    first.load(built.path, DeploymentOptions(device="cuda", max_batch=4))
    notes_first = first.describe().notes
    first.close()
    second.load(built.path, DeploymentOptions(device="cuda", max_batch=4))
    d = second.describe()
    second.close()
    assert any("building it" in n for n in notes_first)
    assert d.settings["engine_cache"]["hit"] is True and any("cache hit" in n for n in d.notes)
    assert "engine cache hit" in capsys.readouterr().err
    assert len(list(engine_cache.glob("*.engine"))) == 1


@pytest.mark.gpu
@needs_gpu
def test_gpu_index_out_of_range_is_refused():
    from cuda.bindings import runtime as rt

    count = rt.cudaGetDeviceCount()[1]
    with pytest.raises(ConfigError) as exc:
        TensorRtBackend.check_device(f"cuda:{count}")
    assert f"no CUDA device {count}" in assert_user_error(exc.value)


@pytest.mark.gpu
@needs_gpu
def test_gpu_refused_variant_never_reaches_the_builder(tmp_path, engine_cache, int2_model):
    with pytest.raises(UnsupportedVariant):
        TensorRtBackend().load(int2_model.path, DeploymentOptions(device="cuda"))
    assert not engine_cache.exists()


# -- issue 21: what the TensorRT row would report wrong (CPU stand-ins for TensorRT 11) ------------------
def test_lower_case_gemm_layer_is_heavy():
    """Recent TensorRT names fused matrix-multiply layers "gemm": an MLP's row must not read "unknown"."""
    doc = {"Layers": [_layer("fc1", None, "gemm", "Row major linear FP16 format"),
                      _layer("fc2", "gemm", "gemm", "Row major linear FP16 format")]}
    heavy, facts = inspect_layers(json.dumps(doc))
    assert [op.compute for op in heavy] == ["fp16", "fp16"]
    assert executed_precision(heavy, facts) == ("fp16", "fp16")


def _layer11(name, ltype, datatype, fmt, tactic=""):
    """A layer as TensorRT 11's inspector writes it: the tensor's datatype and format in separate keys.

    Shape from NVIDIA's "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x" (docs.nvidia.com/
    deeplearning/tensorrt/11.0.0/api/migration/tensorrt-10x-to-11x-IEngineInspector.html): "the output schema
    has changed in TensorRT 11.x"; its tensor objects carry "DataType": "Float" and a separate "Format":
    "Row major linear FP32 format (kLINEAR)", and "Bindings" became "I/O Tensors"."""
    tensor = {"Name": "in", "Location": "Device", "Dimensions": [8, 64], "DataType": datatype, "Format": fmt}
    return {"Name": name, "LayerType": ltype, "Inputs": [tensor], "Outputs": [dict(tensor, Name="out")],
            "TacticName": tactic}


def test_tensorrt11_inspector_json_gives_the_heavy_layers_precision():
    doc = {"Layers": [
        _layer11("conv1", "CaskConvolution", "Int8", "Thirty-two wide channel vectorized row major format (kCHW32)"),
        _layer11("fc", "CaskGemmMatrixMultiply", "Half", "Row major linear format (kLINEAR)"),
        _layer11("fc2", "gemm", "Float", "Row major linear FP32 format (kLINEAR)"),
    ], "I/O Tensors": [{"Name": "x", "IOMode": "Input", "DataType": "Float"}]}
    heavy, _ = inspect_layers(json.dumps(doc))
    assert [op.compute for op in heavy] == ["int8", "fp16", "fp32"]


def test_datatype_key_spelled_datatype_is_read_too():
    layer = _layer11("fc", "MatrixMultiply", "", "")
    layer["Inputs"][0] = {"Name": "in", "Datatype": "Half", "Format": "Row major linear format (kLINEAR)"}
    heavy, _ = inspect_layers(json.dumps({"Layers": [layer]}))
    assert [op.compute for op in heavy] == ["fp16"]


def test_tf32_tactics_report_tf32_only_when_allowed():
    """With --exec-precision tf32 an fp32 layer on a TF32 tactic computed in tf32, and Level 0 must know."""
    doc = json.dumps({"Layers": [_layer("fc", "MatrixMultiply", "CaskGemmMatrixMultiply", "Row major linear FP32",
                                        "Float", "sm90_xmma_gemm_tf32f32_tf32f32_f32_nn")]})
    assert executed_precision(*inspect_layers(doc, tf32_allowed=True))[1] == "tf32"
    text, dtype = executed_precision(*inspect_layers(doc))
    assert dtype == "fp32" and text.startswith("fp32")


class FakeBuilderFlag:
    TF32 = "TF32"


class FakeBuilderConfig:
    """A builder config whose TF32 flag starts on, as TensorRT's does ("Enabled by default")."""

    def __init__(self):
        self.flags = {"TF32"}

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def get_flag(self, flag):
        return flag in self.flags


class FakeDataType:
    """Stand-in for tensorrt.DataType members: only `.name` is read."""

    def __init__(self, name: str):
        self.name = name


class FakeTensorRT:
    """The parts of the tensorrt module the pure helpers read."""

    BuilderFlag = FakeBuilderFlag

    def __init__(self, version: str = "11.4.0.106"):
        self.__version__ = version


@pytest.mark.parametrize("allowed", [False, True])
def test_tf32_is_off_unless_asked_for(allowed):
    config = FakeBuilderConfig()
    set_tf32(FakeTensorRT(), config, allowed)
    assert config.get_flag(FakeBuilderFlag.TF32) is allowed


def test_tf32_is_accepted_by_tensorrt_only(mlp_model):
    from sut.onnxruntime import OnnxRuntimeBackend

    info = inspect_model(mlp_model.path)
    assert TensorRtBackend.supports(info, DeploymentOptions(device="cuda", exec_precision="tf32")) is None
    reason = OnnxRuntimeBackend.supports(info, DeploymentOptions(exec_precision="tf32"))
    assert reason and "cannot execute in 'tf32'" in reason and "\n" not in reason


def test_level0_predicts_tf32_against_the_tf32_peak():
    from tiers.level0.platforms import load_catalog
    from tiers.level0.roofline import carrier

    point = load_catalog().get("h100-sxm").point(None)
    assert carrier(point, "tf32") == "tf32" and point.peak_tops["tf32"] < point.peak_tops["fp16"]
    assert carrier(point, "fp32") == "fp32"


@pytest.mark.parametrize("version", ["10.13.2.6", "8.6.1"])
def test_tensorrt_older_than_11_is_refused_naming_the_pin(version):
    with pytest.raises(BackendUnavailable) as exc:
        check_tensorrt_version(FakeTensorRT(version))
    assert "tensorrt>=11" in assert_user_error(exc.value)


def test_tensorrt_11_is_accepted():
    trt = FakeTensorRT("11.4.0.106")
    assert check_tensorrt_version(trt) is trt


@pytest.mark.parametrize("name, dtype", [("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8),
                                         ("INT64", np.int64), ("BOOL", np.bool_)])
def test_engine_dtypes_map_to_numpy(name, dtype):
    assert numpy_dtype(FakeTensorRT(), FakeDataType(name), "x") == np.dtype(dtype)


@pytest.mark.parametrize("name", ["BF16", "FP8", "INT4"])
def test_io_tensor_without_numpy_dtype_is_a_model_error(name):
    with pytest.raises(ModelError) as exc:
        numpy_dtype(FakeTensorRT(), FakeDataType(name), "logits")
    msg = assert_user_error(exc.value)
    assert "'logits'" in msg and name.lower() in msg and "fp32 or fp16" in msg

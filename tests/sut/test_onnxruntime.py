"""OnnxRuntimeBackend against real ONNX Runtime sessions on small models built in conftest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mlperf_ext.errors import ConfigError, ModelError
from sut.base import Backend, DeploymentOptions, create_backend
from sut.model_file import inspect_model
from sut.onnxruntime import OnnxRuntimeBackend
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
    backend = _loaded(mlp_model, threads=1, streams=2, max_batch=8)
    d = backend.describe()
    assert d.runtime == "onnxruntime" and d.version == ort.__version__ and d.device == "cpu"
    assert d.providers == ["CPUExecutionProvider"]
    assert d.settings["intra_op_num_threads"] == 1
    assert d.settings["execution_mode"] == "ORT_SEQUENTIAL"
    assert d.settings["streams"] == 2 and d.settings["stream_sessions"] == "shared"
    assert d.settings["model_float_precision"] == "fp32"
    assert d.to_dict()["providers"] == ["CPUExecutionProvider"]
    spec = backend.input_spec()
    assert (spec.name, spec.shape, spec.dtype) == ("x", (None, 32), "float32")
    backend.close()


def test_default_threads_left_to_runtime(mlp_model):
    assert _loaded(mlp_model).describe().settings["intra_op_num_threads"] == 0  # 0 = ORT default


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


def test_time_compute_returns_one_positive_time_per_iteration(mlp_model):
    backend = _loaded(mlp_model, max_batch=8)
    times = backend.time_compute(mlp_model.batch(8), iterations=7)
    assert len(times) == 7 and all(isinstance(t, float) and t > 0 for t in times)
    with pytest.raises(ValueError):
        backend.time_compute(mlp_model.batch(8), iterations=0)
    # the system path still works after the compute path bound its own inputs
    x = mlp_model.batch(2)
    np.testing.assert_allclose(backend.infer(x), mlp_model.reference(x), rtol=1e-4, atol=1e-4)


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
    with pytest.raises(ValueError):
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
    assert backend.describe().settings["model_float_precision"] == "fp16"
    x = fp16_model.batch(4)
    np.testing.assert_allclose(backend.infer(x), fp16_model.reference(x), rtol=2e-2, atol=2e-2)



def test_short_last_batch_is_padded_for_a_fixed_batch_model(fixed_batch4_model):
    backend = _loaded(fixed_batch4_model, max_batch=4)
    x = fixed_batch4_model.batch(3)
    out = backend.infer(x)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, fixed_batch4_model.reference(x), rtol=1e-4, atol=1e-4)
    assert len(backend.time_compute(x, iterations=2)) == 2
    with pytest.raises(ModelError):
        backend.infer(fixed_batch4_model.batch(5))

"""Coral backend: LiteRT's CPU path for real (all four scenarios through the CLI), the refusals, the Edge TPU
delegate's real load attempt on this machine, and the Edge TPU itself where one is plugged in.

The TFLite model is built here, at test time, from a small ONNX MLP by the project's own converter
(mlperf_ext.zoo.tflite: the float writer + ai-edge-quantizer), calibrated on MNIST training samples.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.datasets.mnist import mlp_input, mnist_split
from mlperf_ext.errors import BackendUnavailable, ConfigError, MlperfExtError
from mlperf_ext.store import ResultsStore
from mlperf_ext.zoo import tflite
from sut import coral
from sut.base import DeploymentOptions
from sut.coral import CoralBackend
from tests.harness.conftest import make_mlp
from tests.sut.conftest import SCENARIOS, assert_four_scenarios_valid, cli
from tiers.runner import layout
from tiers.runner.launch import PROJECT_ROOT
from tiers.sweep import run_points

BACKEND = "sut.coral:CoralBackend"  # not registered yet: the module:Class form
ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
#: a Server target well inside what the small int8 MLP sustains on LiteRT, high enough for early stopping
SERVER_TARGET = 3000
HAS_EDGETPU_RUNTIME = ctypes.util.find_library("edgetpu") is not None




def one_line_error(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "fix:" in msg, msg
    return msg


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory) -> Path:
    """A full-integer INT8 TFLite MLP (784-64-10, seeded random weights) that takes the `mnist` samples."""
    folder = tmp_path_factory.mktemp("coral")
    onnx_path = make_mlp(folder / "mlp.onnx")
    x_train = mlp_input(mnist_split()[0])
    data = tflite.quantize_int8(tflite.float_tflite(onnx.load(str(onnx_path))), x_train[:256], "input")
    path = folder / "mlp_int8.tflite"
    path.write_bytes(data)
    return path


@dataclass
class FakeEdgetpuModel:
    """Stands in for edgetpu_compiler's output (which cannot be produced here): a TFLite file whose graph is
    one `edgetpu-custom-op`, int8 in and out, as a compiled model's is. It drives the same checks and the same
    delegate load a real `*_edgetpu.tflite` does; no interpreter can run it without the Edge TPU."""

    features: int = 784
    classes: int = 10

    def write(self, path: Path) -> Path:
        from ai_edge_litert import schema_py_generated as fb
        from ai_edge_litert.tools import flatbuffer_utils

        def tensor(name: str, width: int, index: int):
            t = fb.TensorT()
            t.name, t.type, t.shape, t.buffer = name, fb.TensorType.INT8, [1, width], index
            t.quantization = fb.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [1 / 255], [-128]
            return t

        code = fb.OperatorCodeT()
        code.customCode = "edgetpu-custom-op"
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
        graph = fb.SubGraphT()
        graph.tensors = [tensor("input", self.features, 1), tensor("logits", self.classes, 2)]
        graph.inputs, graph.outputs, graph.operators = [0], [1], [op]
        model = fb.ModelT()
        model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
        model.buffers = [fb.BufferT(), fb.BufferT(), fb.BufferT()]
        path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
        return path


@pytest.fixture(scope="module")
def fake_edgetpu_model(tmp_path_factory) -> Path:
    return FakeEdgetpuModel().write(tmp_path_factory.mktemp("edgetpu") / "mlp_edgetpu.tflite")


# ---- LiteRT's CPU path through the real CLI, all four scenarios --------------------------------------------


@pytest.fixture(scope="module")
def cli_sweep(int8_tflite, tmp_path_factory):
    """One CLI run of a spec: SingleStream, MultiStream and Offline (Offline as accuracy + performance, two
    streams), and Server at a set target; LiteRT CPU with one thread per stream."""
    work = tmp_path_factory.mktemp("work")
    common = {
        "models": [str(int8_tflite)],
        "dataset": "mnist",
        "backends": [BACKEND],
        "batch": 8,
        "threads": 1,
    }
    spec = work / "spec.yaml"
    spec.write_text(
        json.dumps(
            [  # JSON is YAML
                {
                    **common,
                    "scenarios": ["SingleStream", "MultiStream"],
                    "mode": "performance",
                    "settings": {"min_duration_ms": 200},
                },
                {
                    **common,
                    "scenarios": ["Offline"],
                    "mode": "submission",
                    "streams": 2,
                    "threads": 2,
                    "settings": {"min_duration_ms": 200},
                },
                {
                    **common,
                    "scenarios": ["Server"],
                    "mode": "performance",
                    "settings": {"min_duration_ms": 200, "server_target_qps": SERVER_TARGET},
                },
            ]
        )
    )
    proc = cli("run", str(spec), "--workdir", str(work))
    results = ResultsStore(layout.store_path(work)).results()
    return proc, {r.point.scenario: r for r in results}


def test_four_scenarios_run_on_litert_cpu_and_are_valid(cli_sweep):
    proc, rows = cli_sweep
    assert_four_scenarios_valid(proc, rows, "ai-edge-litert")
    assert rows["Server"].settings.effective["target_qps"] == SERVER_TARGET  # LoadGen's own name, as logged


def test_what_ran_is_read_back_int8_on_xnnpack(cli_sweep):
    for r in cli_sweep[1].values():
        settings = r.runtime.settings
        assert (r.runtime.precision, r.runtime.compute_dtype) == ("int8", "int8")
        assert r.runtime.providers == ["XNNPACK"], r.runtime.notes
        assert settings["ops"] == {"FULLY_CONNECTED": 2}
        assert settings["delegate_nodes"] == 1 and settings["ops_in_delegate_partitions"] == 2
        assert settings["input"]["dtype"] == "int8" and settings["input"]["scale"] > 0
        assert settings["output"]["dtype"] == "int8"
        assert settings["edgetpu_clock"] == "n/a (cpu)"
        assert settings["num_threads"] == [1] * r.point.streams
        assert settings["stream_interpreters"] == r.point.streams
        assert "invoke()" in settings["compute_boundary"]


def test_compute_is_timed_at_the_deployment(cli_sweep):
    rows = cli_sweep[1]
    assert rows["SingleStream"].compute.batch == 1 and rows["Offline"].compute.batch == 8
    assert rows["Offline"].compute.streams == 2
    for r in rows.values():
        assert r.compute.before_throughput > 0 and r.compute.after_throughput > 0


def test_harness_accuracy_equals_the_direct_litert_evaluation(cli_sweep, int8_tflite):
    """Offline ran accuracy mode over the held-out split: LoadGen's accuracy log, scored by the harness, must
    give exactly the top-1 of LiteRT called directly (integer arithmetic: batching changes nothing)."""
    dataset = open_dataset("mnist")
    x = dataset.load(np.arange(len(dataset)))
    direct = float((tflite.litert_logits(int8_tflite, x).argmax(1) == dataset.labels).mean())
    acc = cli_sweep[1]["Offline"].accuracy
    assert acc.total == len(dataset) and acc.good == round(direct * len(dataset))
    assert acc.value == pytest.approx(direct)


# ---- the backend directly ----------------------------------------------------------------------------------


def test_system_and_compute_paths(int8_tflite):
    backend = CoralBackend()
    backend.load(int8_tflite, DeploymentOptions(threads=1, max_batch=8))
    x = open_dataset("mnist").load(np.arange(8))
    out = backend.infer(x)
    assert out.dtype == np.float32 and out.shape == (8, 10)
    np.testing.assert_array_equal(out, tflite.litert_logits(int8_tflite, x, threads=1))
    assert backend.infer(x[:3]).shape == (3, 10)  # a short batch: the input is resized, and counted
    step = backend.compute_step(x)
    assert all(step() > 0 for _ in range(3))
    assert backend.describe().settings["input_resizes"] == [3]  # load (8), the short batch (3), the step (8)
    backend.close()


def test_xnnpack_off_runs_the_builtin_kernels(int8_tflite):
    backend = CoralBackend()
    backend.load(int8_tflite, DeploymentOptions(threads=1, max_batch=4, runtime_options={"xnnpack": "off"}))
    desc = backend.describe()
    assert desc.providers == ["LiteRT builtin kernels"] and desc.settings["delegate_nodes"] == 0
    assert desc.precision == "int8"
    x = open_dataset("mnist").load(np.arange(64))
    on = tflite.litert_logits(int8_tflite, x, threads=1)
    off = np.concatenate([backend.infer(x[i : i + 4]) for i in range(0, 64, 4)])
    step = float(desc.settings["output"]["scale"])
    assert np.abs(on - off).max() <= 2 * step + 1e-6  # requantization rounding may differ by a step
    backend.close()


def test_onnx_model_is_refused_with_the_way_to_convert_it(tmp_path):
    onnx_path = make_mlp(tmp_path / "mlp.onnx")
    [result] = run_points(
        [RunPoint(model=str(onnx_path), dataset="mnist", backend=BACKEND, scenario="Offline")],
        tmp_path / "work",
    )
    assert result.status == "refused"
    assert (
        "is an ONNX model" in result.error
        and "convert it first" in result.error
        and "-tflite" in result.error
    )


def test_exec_precision_other_than_the_models_is_refused(int8_tflite):
    info = CoralBackend.inspect_model(int8_tflite)
    reason = CoralBackend.supports(info, DeploymentOptions(exec_precision="fp32"))
    assert reason and "cannot execute in 'fp32'" in reason and "fix:" in reason


def test_model_inspection_reads_the_file(int8_tflite, tmp_path):
    info = CoralBackend.inspect_model(int8_tflite)
    assert info.input.shape == (None, 784) and info.input.dtype == "float32"  # quantized on the host
    assert info.fixed_batch is None and dict(info.op_counts) == {"FULLY_CONNECTED": 2}
    assert set(info.weight_types) == {"int8", "int32"} and info.edgetpu_ops == 0
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(MlperfExtError) as err:
        CoralBackend.inspect_model(junk)
    assert "neither a TFLite flatbuffer" in one_line_error(err.value)


def test_operating_modes_belong_to_the_edge_tpu(int8_tflite, fake_edgetpu_model):
    cpu = CoralBackend.inspect_model(int8_tflite)
    assert "Edge TPU's clock" in CoralBackend.supports(cpu, DeploymentOptions(operating_mode="edgetpu-max"))
    tpu = CoralBackend.inspect_model(fake_edgetpu_model)
    reason = CoralBackend.supports(tpu, DeploymentOptions(device="edgetpu", operating_mode="LATENCY"))
    assert "no operating mode 'LATENCY'" in reason
    assert (
        CoralBackend.supports(tpu, DeploymentOptions(device="edgetpu", operating_mode="edgetpu-std")) is None
    )


def test_devices_and_models_must_match(int8_tflite, fake_edgetpu_model):
    tpu = CoralBackend.inspect_model(fake_edgetpu_model)
    assert tpu.edgetpu_ops == 1 and tpu.fixed_batch == 1
    assert "compiled for the Edge TPU" in CoralBackend.supports(tpu, DeploymentOptions(device="cpu"))
    cpu = CoralBackend.inspect_model(int8_tflite)
    reason = CoralBackend.supports(cpu, DeploymentOptions(device="edgetpu"))
    assert "every op would run on the CPU" in reason and "edgetpu_compiler" in reason


def test_missing_runtime_names_the_extra(monkeypatch):
    real = coral.importlib.util.find_spec
    monkeypatch.setattr(
        coral.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("ai_edge_litert", "tflite_runtime") else real(name, *a),
    )
    with pytest.raises(BackendUnavailable) as err:
        CoralBackend.check_device("cpu")
    assert "pip install 'mlperf-ext[coral]'" in one_line_error(err.value)
    with pytest.raises(BackendUnavailable):
        CoralBackend().load(Path("unused.tflite"), DeploymentOptions())


def test_device_strings():
    assert coral.parse_device("cpu") == coral.Device("cpu")
    assert coral.parse_device("edgetpu") == coral.Device("edgetpu")
    assert coral.parse_device("edgetpu:usb:1") == coral.Device("edgetpu", "usb:1")
    assert coral.parse_device("edgetpu:pci") == coral.Device("edgetpu", "pci")
    assert coral.parse_device("edgetpu:0") == coral.Device("edgetpu", ":0")
    for bad in ("cuda", "edgetpu:wifi", "edgetpu:usb:x"):
        with pytest.raises(ConfigError) as err:
            coral.parse_device(bad)
        one_line_error(err.value)


# ---- the Edge TPU refused on this machine: the real delegate load ------------------------------------------


@pytest.mark.skipif(
    HAS_EDGETPU_RUNTIME, reason="an Edge TPU runtime is installed here: the edgetpu tests cover it"
)
def test_edgetpu_refused_when_the_delegate_cannot_load(fake_edgetpu_model, capfd):
    backend = CoralBackend()
    with pytest.raises(ConfigError) as err:
        backend.load(fake_edgetpu_model, DeploymentOptions(device="edgetpu"))
    msg = one_line_error(err.value)
    # the runtime's own words: load_delegate really tried to open the library
    assert "the Edge TPU delegate did not load" in msg and "libedgetpu.so.1" in msg
    assert "cannot open shared object file" in msg
    assert backend._streams == []  # nothing loaded, nothing fell back to the CPU
    assert "Delegate.__del__" not in capfd.readouterr().err


@pytest.mark.skipif(
    HAS_EDGETPU_RUNTIME, reason="an Edge TPU runtime is installed here: the edgetpu tests cover it"
)
def test_edgetpu_device_refused_before_anything_runs(fake_edgetpu_model, tmp_path):
    work = tmp_path / "work"
    proc = cli(
        "run",
        "--model",
        str(fake_edgetpu_model),
        "--dataset",
        "mnist",
        "--backend",
        BACKEND,
        "--scenario",
        "SingleStream",
        "--device",
        "edgetpu",
        "--workdir",
        str(work),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Edge TPU runtime here" in lines[0] and "fix:" in lines[0]
    assert not (work / layout.RUNS_DIR).exists()


# ---- reading the Edge TPU runtime's build and pycoral without the hardware ---------------------------------


def _maps(tmp_path: Path, library: Path) -> Path:
    maps = tmp_path / "maps"
    maps.write_text(
        f"7f00-7f10 r-xp 00000000 fd:01 42   {library}\n"
        "7f20-7f30 r-xp 00000000 fd:01 43   /usr/lib/libc.so.6\n"
    )
    return maps


@pytest.mark.parametrize("package,clock", [("libedgetpu1-max", "max"), ("libedgetpu1-std", "std")])
def test_libedgetpu_build_is_read_from_the_owning_package(tmp_path, package, clock):
    real = tmp_path / "lib" / "libedgetpu.so.1.0"
    real.parent.mkdir()
    real.write_bytes(b"")
    link = tmp_path / "lib" / "libedgetpu.so.1"
    link.symlink_to(real.name)
    info = tmp_path / "dpkg"
    info.mkdir()
    (info / f"{package}:amd64.list").write_text(f"/.\n{tmp_path}/lib\n{link}\n")  # dpkg lists the symlink
    (info / "libc6:amd64.list").write_text("/usr/lib/libc.so.6\n")
    found, evidence = coral.libedgetpu_build(_maps(tmp_path, real), info)
    assert found == clock and package in evidence


def test_libedgetpu_build_unknown_without_a_package(tmp_path):
    lib = tmp_path / "libedgetpu.so.1"
    lib.write_bytes(b"")
    found, evidence = coral.libedgetpu_build(_maps(tmp_path, lib), tmp_path)
    assert found is None and "neither libedgetpu1-max nor libedgetpu1-std" in evidence
    empty = tmp_path / "empty_maps"
    empty.write_text("")
    assert coral.libedgetpu_build(empty, tmp_path) == (None, "no libedgetpu is mapped into this process")


def test_package_version_from_dpkg_status(tmp_path):
    status = tmp_path / "status"
    status.write_text(
        "Package: libedgetpu1-std\nStatus: install ok installed\nVersion: 16.0\n\n"
        "Package: libedgetpu1-max\nStatus: deinstall ok config-files\nVersion: 15.0\n"
    )
    assert coral.package_version("libedgetpu1-std", status) == "16.0"
    assert coral.package_version("libedgetpu1-max", status) is None


def test_only_googles_pycoral_is_used(tmp_path, monkeypatch):
    """The PyPI project named pycoral (not Google's) has no utils/edgetpu.py: recognised, and not imported."""
    other = tmp_path / "other" / "pycoral"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the coral-reef atlas CLI must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "other"))
    monkeypatch.delitem(sys.modules, "pycoral", raising=False)
    assert coral.google_pycoral() is None
    assert "pycoral" not in sys.modules


# ---- the Edge TPU itself (skipped without one) -------------------------------------------------------------


def _edgetpu_or_skip() -> None:
    if not HAS_EDGETPU_RUNTIME:
        pytest.skip("no Edge TPU runtime (libedgetpu.so.1) on this machine")
    from ai_edge_litert.interpreter import load_delegate

    try:
        load_delegate(coral.EDGETPU_LIBRARY)
    except (OSError, ValueError) as exc:
        pytest.skip(f"no Edge TPU found: the delegate did not load ({str(exc).splitlines()[0]})")


@pytest.fixture(scope="module")
def compiled_model(int8_tflite, tmp_path_factory) -> Path:
    import shutil

    _edgetpu_or_skip()
    if shutil.which("edgetpu_compiler") is None:
        pytest.skip("edgetpu_compiler is not installed (it compiles the test model for the Edge TPU)")
    out = tmp_path_factory.mktemp("compiled")
    proc = subprocess.run(
        ["edgetpu_compiler", "-o", str(out), str(int8_tflite)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / f"{int8_tflite.stem}_edgetpu.tflite"


@pytest.mark.edgetpu
def test_edgetpu_runs_and_agrees_with_the_cpu(compiled_model, int8_tflite):
    backend = CoralBackend()
    backend.load(compiled_model, DeploymentOptions(device="edgetpu"))
    x = open_dataset("mnist").load(np.arange(32))
    tpu = np.concatenate([backend.infer(x[i : i + 1]) for i in range(32)])
    cpu = tflite.litert_logits(int8_tflite, x, threads=1)
    assert (tpu.argmax(1) == cpu.argmax(1)).mean() >= 0.9
    desc = backend.describe()
    assert desc.precision.startswith("int8") and desc.providers[0].startswith("edgetpu delegate")
    assert desc.settings["edgetpu_clock"] in ("max", "std")  # the build found must be one of Coral's two
    backend.close()


@pytest.mark.edgetpu
def test_edgetpu_clock_mode_must_match_the_installed_build(compiled_model):
    _edgetpu_or_skip()
    backend = CoralBackend()
    backend.load(compiled_model, DeploymentOptions(device="edgetpu"))
    clock = backend.describe().settings["edgetpu_clock"]
    backend.close()
    other = {"max": "edgetpu-std", "std": "edgetpu-max"}[clock]
    with pytest.raises(ConfigError) as err:
        CoralBackend().load(compiled_model, DeploymentOptions(device="edgetpu", operating_mode=other))
    assert "build" in one_line_error(err.value)


@pytest.mark.edgetpu
def test_edgetpu_four_scenarios_through_the_cli(compiled_model, tmp_path):
    work = tmp_path / "work"
    for scenario in SCENARIOS:
        extra = ["--setting", "server_target_qps=200"] if scenario == "Server" else []
        proc = cli(
            "run",
            "--model",
            str(compiled_model),
            "--dataset",
            "mnist",
            "--backend",
            BACKEND,
            "--scenario",
            scenario,
            "--device",
            "edgetpu",
            "--setting",
            "min_duration_ms=200",
            *extra,
            "--workdir",
            str(work),
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = ResultsStore(layout.store_path(work)).results()
    assert {r.point.scenario for r in rows} == set(SCENARIOS)
    assert all(r.status == "ok" and r.runtime.device == "edgetpu" for r in rows), [r.error for r in rows]

"""The GPU check (benchmarks/gpu_check.py) runs once, on a lent GPU, with minutes to spare: what can break it is
found here first, on the CPU. Its torch part runs through the real CLI on the CPU (`--device cpu`), its command
runner survives a hung command, and each GPU name maps to the catalog platform of that very board, or to none."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_torch  # noqa: E402  (after the path)
from gpu_common import run_cmd  # noqa: E402

from tiers.level0.platforms import load_catalog  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_command_past_its_timeout_is_killed_with_its_children_and_its_output_kept(tmp_path):
    """A hung point must not leave a process on the GPU, nor end the check with a TypeError (TimeoutExpired
    carries bytes even in text mode)."""
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time\n"
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
              "print('started', flush=True)\n"
              "time.sleep(60)\n")
    code, text = run_cmd([sys.executable, "-c", script], timeout=3)
    assert code == 124
    assert isinstance(text, str) and "started" in text and "killed after 3 s" in text
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_command_that_finishes_gives_its_exit_and_both_streams():
    code, text = run_cmd([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                         timeout=30)
    assert code == 3 and "out" in text and "err" in text
    assert run_cmd(["/nonexistent/program"], timeout=5)[0] == 127


@pytest.mark.parametrize(("name", "platform"), [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H200", "h200-sxm"), ("NVIDIA A100-SXM4-80GB", "a100-sxm"),
    ("NVIDIA L4", "l4"),
    # other boards of the same chips have other peaks or bandwidths: no catalog entry is claimed for them
    ("NVIDIA H100 PCIe", None), ("NVIDIA H100 NVL", None), ("NVIDIA H200 NVL", None), ("NVIDIA A100-SXM4-40GB", None),
    ("NVIDIA A100-PCIE-40GB", None), ("NVIDIA L40S", None), ("NVIDIA GeForce RTX 4090", None),
])
def test_a_gpu_name_maps_to_its_own_board_or_to_none(name, platform):
    assert gpu_torch.platform_of_gpu(name) == platform


def test_every_mapped_platform_is_a_catalog_gpu():
    catalog = load_catalog()
    for platform in gpu_torch.MODEL_PLATFORMS.values():
        entry = catalog.get(platform)
        assert entry.kind == "gpu" and {"fp32", "tf32", "fp16", "bf16"} <= set(entry.peak_tops)


def test_unknown_names_in_the_torch_lists_exit_2_before_anything_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--torch-precisions", "fp32,fp64",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown --torch-precisions fp64" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_gpu_check_runs_its_torch_part_on_the_cpu(tmp_path):
    """The script as a lent GPU host would run it, on the CPU: rows through the CLI, SUT/native, level 0, and
    TensorRT skipped with the reason in the JSON."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--torch-models", "mlp",
         "--torch-precisions", "fp32", "--torch-scenarios", "Offline,SingleStream", "--torch-skip", "capacity",
         "--platform", "xeon-8480plus", "--skip-pytest", "--seconds", "0.3", "--out", str(out),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, OUT=""))
    report = json.loads((out / "gpu_check.json").read_text())
    torch_part = report["sections"]["torch"]
    rows = torch_part["mlp rows"]
    assert set(rows) == {"fp32 Offline", "fp32 SingleStream"}, proc.stdout[-2000:]
    for fig in rows.values():
        assert fig["status"] == "ok" and fig["sys_valid"] is True and fig["precision"] == "fp32"
        assert fig["sys_throughput"] > 0 and fig["compute_throughput"] > 0
    native = torch_part["mlp native fp32"]
    assert native["native"] > 0 and native["ratio"] == pytest.approx(native["sut"] / native["native"])
    efficiency = [r for key, records in torch_part.items() if key.startswith("efficiency") for r in records]
    assert efficiency and {r["platform"] for r in efficiency} == {"xeon-8480plus"}
    skipped = {s["what"]: s["why"] for s in report["skipped"]}
    assert skipped["torch capacity"] == "--torch-skip"
    if importlib.util.find_spec("tensorrt") is None:  # CI: the check ends after torch, saying why
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert "tensorrt" in skipped["TensorRT's SUT, native and power sections"]
    assert (out / "gpu_check.log").read_text().count("== torch mlp") == 1

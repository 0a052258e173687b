"""Levels 1-2 through the point runner: runnable cut files with their facts as row columns, a stack's
residual input bound as a constant, and the analysis (sum of the parts, op-type shares, profilers)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mlperf_ext import cli
from mlperf_ext.store import ResultsStore
from tests.tiers.micro.models import mlp3, ort_run
from tests.tiers.micro.models import small_resnet as build_small_resnet
from tiers.micro.bench import plan_micro, runnable
from tiers.micro.cut import cut_stacks
from tiers.micro.profile import ort_profile
from tiers.runner import layout


@pytest.fixture(scope="module")
def small_resnet(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "resnetish.onnx"
    onnx.save(build_small_resnet(), path)
    return path


def test_a_stack_with_a_shortcut_input_runs_with_it_bound_as_a_constant(small_resnet):
    stacks = cut_stacks(onnx.load(str(small_resnet)), 2)
    two = next(c for c in stacks.cuts if len(c.inputs) == 2)
    model, bound = runnable(two, batch=3)
    assert bound and len(model.graph.input) == 1
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
    assert all(v.shape[0] == 3 for v in ort_run(model, {model.graph.input[0].name: x}).values())


def test_plan_makes_files_datasets_and_points(small_resnet, tmp_path):
    targets, sets = plan_micro(small_resnet, "resnetish", (1, 2), (2,), ["onnxruntime"], 4, 1, tmp_path)
    assert {t.level for t in targets} == {1, 2, 3}
    assert sum(len(t.points) for t in targets) == 2 * len(targets)  # SingleStream b1 + Offline b4 each
    for t in targets:
        assert (t.dataset / "samples.npy").is_file() and set(t.models) == {1, 4}
        if t.cut is not None:
            meta = (t.models[4].with_suffix(".json")).read_text()
            assert '"micro"' in meta and t.cut.name in meta
    assert sets["1"].unique == sum(1 for t in targets if t.level == 1)


def test_node_names_with_path_separators_make_files_inside_the_output_dir(small_resnet, tmp_path):
    model = onnx.load(str(small_resnet))
    for k, node in enumerate(model.graph.node):  # torch's exporter names nodes like "/layer1/0/conv1/Conv"
        node.name = f"/block{k}/{node.op_type}"
    renamed = tmp_path / "torchish.onnx"
    onnx.save(model, renamed)
    out = tmp_path / "out"
    targets, _sets = plan_micro(renamed, "torchish", (1,), (2,), ["onnxruntime"], 4, 1, out)
    cuts = [t for t in targets if t.cut is not None]  # level 3 is the parent model itself, where it lies
    files = [p for t in cuts for p in t.models.values()] + [t.dataset for t in cuts]
    assert files and all(p.resolve().is_relative_to(out.resolve()) and p.exists() for p in files)
    assert len({t.models[1] for t in cuts}) == len(cuts)  # every cut has its own file: no two names collided


def test_file_stem_is_safe_and_keeps_names_apart():
    from tiers.micro.bench import file_stem

    assert file_stem("conv1") == "conv1"
    a, b = file_stem("/a/b"), file_stem("_a_b")
    assert "/" not in a and a != b and a.startswith("a_b-")


def test_micro_command_stores_rows_with_the_cuts_facts(tmp_path, capsys):
    model = tmp_path / "mlp3.onnx"
    onnx.save(mlp3(), model)
    code = cli.main(["micro", "--model", str(model), "--backend", "onnxruntime", "--level", "1", "--batch", "4",
                     "--threads", "1", "--workdir", str(tmp_path), "--wide", "--csv", str(tmp_path / "layers.csv")])
    out = capsys.readouterr().out
    assert code == 0
    rows = ResultsStore(layout.store_path(tmp_path)).rows()
    micro = [r for r in rows if r["level"] == 1]
    whole = [r for r in rows if r["level"] is None]
    assert micro and len(whole) == 2 and all(r["status"] == "ok" for r in rows)
    for r in micro:
        assert r["layer"] and r["op_type"] and r["occurrences"] >= 1 and r["parent_model"] == "mlp3"
    assert sum(r["occurrences"] for r in micro if r["scenario"] == "Offline") == 7  # 4 Gemm + 3 Relu layers
    assert "sum of the parts" in out and "where the time goes" in out and "profiler share" in out
    assert (tmp_path / "layers.csv").read_text().startswith("backend,level,name,op_type")


def test_the_ort_profile_shares_add_up(small_resnet):
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    shares = ort_profile(small_resnet, x, threads=1)
    assert shares and abs(sum(shares.values()) - 1) < 1e-9 and "Conv" in shares

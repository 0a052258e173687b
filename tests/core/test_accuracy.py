"""mlperf_ext.accuracy on an accuracy log written by the real LoadGen (null SUT answering idx % 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.accuracy import AccuracyResult, evaluate, main
from mlperf_ext.errors import DatasetError
from mlperf_ext.logs import LogParseError

from .loadgen_null_run import run_in_subprocess

TOTAL = 200  # QSL size of the accuracy run: LoadGen logs every sample once in AccuracyOnly mode
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def accuracy_json(tmp_path_factory) -> Path:
    out = run_in_subprocess("Offline", "accuracy", tmp_path_factory.mktemp("acc") / "run",
                            "--total-count", str(TOTAL), "--performance-count", "64")
    return out / "mlperf_log_accuracy.json"


def _labels() -> np.ndarray:
    return np.arange(TOTAL, dtype=np.int64) % 10


def _write(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return path


def test_every_sample_logged_once(accuracy_json):
    entries = json.loads(accuracy_json.read_text())
    assert sorted(e["qsl_idx"] for e in entries) == list(range(TOTAL))
    assert all(e["data"] == e["data"].upper() and len(e["data"]) == 8 for e in entries)


def test_all_correct(accuracy_json):
    r = evaluate(accuracy_json, _labels())
    assert (r.good, r.total, r.duplicates) == (TOTAL, TOTAL, 0)
    assert r.accuracy == 1.0
    assert r.line == f"accuracy=100.000%, good={TOTAL}, total={TOTAL}"


def test_wrong_labels_give_lower_number(accuracy_json):
    labels = _labels()
    labels[::4] = (labels[::4] + 1) % 10  # 50 of the 200 labels no longer match the SUT's answer
    r = evaluate(accuracy_json, labels)
    assert (r.good, r.total) == (150, 200)
    assert r.line == "accuracy=75.000%, good=150, total=200"
    assert evaluate(accuracy_json, (_labels() + 1) % 10).good == 0


def test_line_format_rounds_like_mlperf():
    assert AccuracyResult(good=2, total=3).line == "accuracy=66.667%, good=2, total=3"


def test_duplicates_keep_first(tmp_path, accuracy_json):
    entries = json.loads(accuracy_json.read_text())
    first = entries[0]
    wrong = (first["qsl_idx"] % 10 + 1).to_bytes(4, "little").hex().upper()
    entries.append({"seq_id": len(entries), "qsl_idx": first["qsl_idx"], "data": wrong})
    r = evaluate(_write(tmp_path, entries), _labels())
    assert (r.good, r.total, r.duplicates) == (TOTAL, TOTAL, 1)


@pytest.mark.parametrize("dtype", ["int64", "float32"])
def test_other_dtypes(tmp_path, dtype):
    labels = np.array([3, 7, 1])
    predictions = np.array([3, 7, 2], dtype=np.dtype(dtype).newbyteorder("<"))
    entries = [{"seq_id": i, "qsl_idx": i, "data": predictions[i:i + 1].tobytes().hex().upper()}
               for i in range(3)]
    r = evaluate(_write(tmp_path, entries), labels, dtype=dtype)
    assert (r.good, r.total) == (2, 3)


def test_wrong_dtype_is_undecodable(accuracy_json):
    with pytest.raises(LogParseError, match="does not decode as int64.*--dtype"):
        evaluate(accuracy_json, _labels(), dtype="int64")  # 4-byte payloads


def test_bad_inputs(tmp_path, accuracy_json):
    with pytest.raises(LogParseError, match="does not exist"):
        evaluate(tmp_path / "missing.json", _labels())
    broken = tmp_path / "broken.json"
    broken.write_text(accuracy_json.read_text()[:100])
    with pytest.raises(LogParseError, match="not valid JSON"):
        evaluate(broken, _labels())
    with pytest.raises(LogParseError, match="only 100 labels"):
        evaluate(accuracy_json, _labels()[:100])
    with pytest.raises(LogParseError, match="does not decode"):
        evaluate(_write(tmp_path, [{"seq_id": 0, "qsl_idx": 0, "data": "ZZ"}]), _labels())
    with pytest.raises(LogParseError, match="does not decode"):
        evaluate(_write(tmp_path, [{"seq_id": 0, "qsl_idx": 0, "data": ""}]), _labels())
    with pytest.raises(DatasetError, match="1-D integer"):
        evaluate(accuracy_json, _labels().astype(np.float32))


def test_performance_run_log_is_empty(tmp_path):
    # what LoadGen writes after a performance run without accuracy sampling (an empty JSON array)
    empty = tmp_path / "mlperf_log_accuracy.json"
    empty.write_text("[\n]")
    with pytest.raises(LogParseError, match="AccuracyOnly"):
        evaluate(empty, _labels())


def test_cli_in_process(tmp_path, accuracy_json, capsys):
    labels = tmp_path / "labels.npy"
    np.save(labels, _labels())
    assert main(["--mlperf-accuracy-file", str(accuracy_json), "--labels", str(labels)]) == 0
    assert capsys.readouterr().out == f"accuracy=100.000%, good={TOTAL}, total={TOTAL}\n"

    ds = tmp_path / "ds"
    ds.mkdir()
    np.save(ds / "samples.npy", np.zeros((TOTAL, 2), dtype=np.float32))
    np.save(ds / "labels.npy", _labels())
    assert main(["--mlperf-accuracy-file", str(accuracy_json), "--dataset", str(ds)]) == 0
    assert capsys.readouterr().out.startswith("accuracy=100.000%")

    assert main(["--mlperf-accuracy-file", str(tmp_path / "missing.json"), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fix:" in err

    assert main(["--mlperf-accuracy-file", str(accuracy_json), "--labels", str(tmp_path / "x.npy")]) == 2
    assert "labels file" in capsys.readouterr().err


def test_cli_module_entry_point(tmp_path, accuracy_json):
    labels = tmp_path / "labels.npy"
    np.save(labels, _labels())
    proc = subprocess.run([sys.executable, "-m", "mlperf_ext.accuracy", "--mlperf-accuracy-file",
                           str(accuracy_json), "--labels", str(labels)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"accuracy=100.000%, good={TOTAL}, total={TOTAL}\n"
    bad = subprocess.run([sys.executable, "-m", "mlperf_ext.accuracy", "--mlperf-accuracy-file",
                          str(tmp_path / "nope.json"), "--labels", str(labels)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "fix:" in bad.stderr and bad.stdout == ""

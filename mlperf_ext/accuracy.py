"""Score LoadGen's `mlperf_log_accuracy.json` for top-1 classification, the way MLPerf does.

Mirrors the reference `vision/classification_and_detection/tools/accuracy-imagenet.py`: each
entry's `data` (upper-case hex of the bytes the SUT passed to QuerySamplesComplete) is decoded
with `--dtype`, its first element is the predicted class, entries are de-duplicated by
`qsl_idx` (first one kept), and the result is printed as MLPerf's exact line
`accuracy=XX.XXX%, good=N, total=M` (submission checkers grep for it).
This project's SUTs write one little-endian int32 class index per sample, hence the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.errors import DatasetError, MlperfExtError
from mlperf_ext.logs import LogParseError

#: dtypes a SUT may write its top-1 index in (little-endian, as LoadGen copies raw host bytes)
DTYPES = {"int32": np.dtype("<i4"), "int64": np.dtype("<i8"), "float32": np.dtype("<f4")}


@dataclass(frozen=True)
class AccuracyResult:
    """Top-1 accuracy over the unique samples of one accuracy log."""

    good: int
    total: int
    #: entries skipped because their qsl_idx had been seen already
    duplicates: int = 0

    @property
    def accuracy(self) -> float:
        """Fraction correct in [0, 1]."""
        return self.good / self.total

    @property
    def line(self) -> str:
        """MLPerf's exact result line (format from accuracy-imagenet.py)."""
        return f"accuracy={100.0 * self.accuracy:.3f}%, good={self.good}, total={self.total}"


def read_accuracy_log(path: Path) -> list[dict]:
    """The entries of a LoadGen accuracy log; LogParseError naming the fix when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise LogParseError(f"accuracy log '{path}' does not exist; fix: pass the "
                            "mlperf_log_accuracy.json of an AccuracyOnly LoadGen run")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogParseError(f"accuracy log '{path}' is not valid JSON ({exc}); fix: the run was cut "
                            "off or the file was edited - re-run the accuracy test") from exc
    if not isinstance(entries, list):
        raise LogParseError(f"accuracy log '{path}' is not a JSON array; fix: pass the "
                            "mlperf_log_accuracy.json LoadGen wrote")
    if not entries:
        raise LogParseError(f"accuracy log '{path}' has no entries; fix: it comes from a performance "
                            "run - run LoadGen in AccuracyOnly mode to log every sample")
    return entries


def _decode(entry: object, pos: int, path: Path, dtype: np.dtype) -> tuple[int, int]:
    """(qsl_idx, predicted class) of one entry."""
    if not isinstance(entry, dict) or "qsl_idx" not in entry or "data" not in entry:
        raise LogParseError(f"accuracy log '{path}' entry {pos} lacks qsl_idx/data; fix: pass the "
                            "mlperf_log_accuracy.json LoadGen wrote")
    idx = entry["qsl_idx"]
    data = entry["data"]
    try:
        raw = bytes.fromhex(data)
        values = np.frombuffer(raw, dtype=dtype)
        if values.size == 0:
            raise ValueError("empty response")
        predicted = int(values[0])
    except (TypeError, ValueError, OverflowError) as exc:
        raise LogParseError(f"accuracy log '{path}' entry {pos} (qsl_idx {idx}) has data {str(data)[:32]!r} "
                            f"that does not decode as {dtype.name} ({exc}); fix: pass the --dtype the SUT "
                            "wrote its top-1 class in, or check that the SUT returned a payload for "
                            "every sample") from exc
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise LogParseError(f"accuracy log '{path}' entry {pos} has qsl_idx {idx!r}, not an integer; "
                            "fix: pass the mlperf_log_accuracy.json LoadGen wrote")
    return idx, predicted


def evaluate(accuracy_json: Path, labels: np.ndarray, dtype: str = "int32") -> AccuracyResult:
    """Top-1 accuracy of the logged predictions against `labels[qsl_idx]`."""
    return evaluate_entries(read_accuracy_log(accuracy_json), labels, dtype, Path(accuracy_json))


def evaluate_entries(entries: list, labels: np.ndarray, dtype: str = "int32",
                     path: Path = Path("<entries>")) -> AccuracyResult:
    """`evaluate` on entries already read (or a subset of a log's); `path` names them in errors."""
    if dtype not in DTYPES:
        raise MlperfExtError(f"unknown dtype '{dtype}'; fix: use one of {', '.join(DTYPES)}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype "
                           f"{labels.dtype}; fix: pass one class index per sample")
    seen: set[int] = set()
    good = duplicates = 0
    for pos, entry in enumerate(entries):
        idx, predicted = _decode(entry, pos, path, DTYPES[dtype])
        if not 0 <= idx < len(labels):
            raise LogParseError(f"accuracy log '{path}' has qsl_idx {idx} but there are only "
                                f"{len(labels)} labels; fix: pass the labels of the dataset this run used")
        if idx in seen:
            duplicates += 1
            continue
        seen.add(idx)
        good += int(predicted == int(labels[idx]))
    return AccuracyResult(good=good, total=len(seen), duplicates=duplicates)


def load_labels(labels_path: Path | None = None, dataset: str | None = None) -> np.ndarray:
    """Labels from a `.npy` file or from a dataset (directory or built-in name)."""
    if labels_path is not None:
        path = Path(labels_path)
        if not path.is_file():
            raise DatasetError(f"labels file '{path}' does not exist; fix: pass a .npy file with one "
                               "class index per sample")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"labels file '{path}' is not a readable .npy array ({exc}); fix: save "
                               "the labels with numpy.save") from exc
    if dataset is None:
        raise DatasetError("no labels given; fix: pass --labels FILE.npy or --dataset NAME_OR_DIR")
    from mlperf_ext.datasets import open_dataset

    ds = open_dataset(dataset)
    if ds.labels is None:
        raise DatasetError(f"dataset '{dataset}' has no labels; fix: use a labelled dataset or pass "
                           "--labels FILE.npy")
    return ds.labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlperf_ext.accuracy",
                                     description="Top-1 accuracy of a LoadGen accuracy log (MLPerf format).")
    parser.add_argument("--mlperf-accuracy-file", required=True, type=Path,
                        help="mlperf_log_accuracy.json of an AccuracyOnly run")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help=".npy file: one class index per QSL sample")
    source.add_argument("--dataset", help="dataset directory or built-in name whose labels to use")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="int32",
                        help="how the SUT wrote its top-1 class (default int32)")
    args = parser.parse_args(argv)
    try:
        labels = load_labels(args.labels, args.dataset)
        result = evaluate(args.mlperf_accuracy_file, labels, args.dtype)
    except MlperfExtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(result.line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

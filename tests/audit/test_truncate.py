"""MLPerf's accuracy-log truncation: what the tree keeps, the hash, and the kept full log."""

from __future__ import annotations

import hashlib
import json

import pytest

from audit.truncate import ELLIPSIS, is_truncated, read_hash, truncate_accuracy_dir, truncated
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import LogParseError


def accuracy_dir(tmp_path, entries: int):
    d = tmp_path / "accuracy"
    d.mkdir()
    log = d / "mlperf_log_accuracy.json"
    body = ",\n".join(
        f'{{ "seq_id" : {i}, "qsl_idx" : {i}, "data" : "{i % 10:02X}000000" }}' for i in range(entries)
    )
    log.write_text(f"[\n{body}\n]\n")
    (d / "accuracy.txt").write_text("accuracy=100.000%, good=10, total=10\n")
    return d, log


def test_large_log_is_cut_to_head_and_tail(tmp_path):
    d, log = accuracy_dir(tmp_path, 5000)
    full = log.read_bytes()
    record = truncate_accuracy_dir(d, tmp_path / "kept" / "mlperf_log_accuracy.json")
    cut = log.read_bytes()
    assert cut == full[:4096] + b"\n\n...\n\n" + full[-4096:] and is_truncated(cut)
    assert len(cut) <= 10 * 1024 and record.fits and record.truncated_size == len(cut)
    assert record.full_sha256 == hashlib.sha256(full).hexdigest() == read_hash(d / "accuracy.txt")
    assert (d / "accuracy.txt").read_text() == (
        f"accuracy=100.000%, good=10, total=10\n\nhash={record.full_sha256}\n"
    )
    assert record.kept_copy.read_bytes() == full
    assert truncated(record.kept_copy.read_bytes()) == cut


def test_a_log_of_4_to_8_kib_is_cut_as_upstream_cuts_it(tmp_path):
    # truncate_accuracy_log.py truncate_file cuts every log of 4096 bytes or more, so head and tail overlap
    d, log = accuracy_dir(tmp_path, 100)
    full = log.read_bytes()
    assert 4096 <= len(full) < 2 * 4096
    record = truncate_accuracy_dir(d, tmp_path / "kept" / "mlperf_log_accuracy.json")
    cut = log.read_bytes()
    assert cut == full[:4096] + ELLIPSIS + full[-4096:] and len(cut) == 8199 and is_truncated(cut)
    assert record.kept_copy.read_bytes() == full and read_hash(d / "accuracy.txt") == record.full_sha256


@pytest.mark.parametrize("size", [4095, 4096])
def test_only_a_log_under_4096_bytes_stays_whole(size):
    data = b"[" + b" " * (size - 2) + b"]"
    assert (truncated(data) == data) is (size < 4096)


def test_small_log_is_kept_whole(tmp_path):
    d, log = accuracy_dir(tmp_path, 60)
    full = log.read_bytes()
    assert len(full) < 4096
    record = truncate_accuracy_dir(d, None)
    assert log.read_bytes() == full and not is_truncated(full)
    assert record.kept_copy is None and read_hash(d / "accuracy.txt") == hashlib.sha256(full).hexdigest()
    json.loads(log.read_text())  # still the whole JSON


def test_second_pass_is_refused(tmp_path):
    d, _ = accuracy_dir(tmp_path, 5000)
    truncate_accuracy_dir(d, None)
    with pytest.raises(ConfigError, match="already has a hash"):
        truncate_accuracy_dir(d, None)


def test_needs_accuracy_txt(tmp_path):
    d, _ = accuracy_dir(tmp_path, 10)
    (d / "accuracy.txt").unlink()
    with pytest.raises(LogParseError, match="fix:"):
        truncate_accuracy_dir(d, None)

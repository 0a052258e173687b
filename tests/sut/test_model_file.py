"""sut.model_file helpers that the backends share."""


def test_once_per_file_version_reads_again_only_when_the_file_changes(tmp_path):
    import os

    from sut.model_file import once_per_file_version

    reads = []
    path = tmp_path / "m.onnx"
    path.write_bytes(b"one")
    cached = once_per_file_version(lambda p: reads.append(p.read_bytes()) or f"refused {len(reads)}")
    assert cached(path) == cached(path) == "refused 1" and reads == [b"one"]
    path.write_bytes(b"three")  # another size (and mtime): another version
    os.utime(path, ns=(1, 1))
    assert cached(path) == "refused 2" and reads == [b"one", b"three"]


def test_has_op_reads_the_census(tmp_path):
    from sut.model_file import inspect_model
    from tests.harness.conftest import make_mlp

    info = inspect_model(make_mlp(tmp_path / "mlp.onnx"))
    assert info.has_op("Gemm") and info.has_op("QuantizeLinear", "Relu")
    assert not info.has_op("QuantizeLinear", "DequantizeLinear")

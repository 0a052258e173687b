"""mlperf-ext: an MLPerf-LoadGen-compatible inference benchmark with QuTiBench-style tiers."""

from importlib import metadata

try:
    __version__ = metadata.version("mlperf-ext")
except metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

"""The compiled part of mlperf-ext: the native Server dispatcher (scenarios/native_batcher.cpp).

Everything else is declared in pyproject.toml. The extension is optional: when it cannot be built (no C++
compiler), pip still installs the package and the Server scenario uses its Python dispatcher, and every row
says which dispatcher ran (`dispatch_impl`).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "scenarios._native", ["scenarios/native_batcher.cpp"], language="c++",
    extra_compile_args=["-std=c++17", "-O2", "-pthread", "-fvisibility=hidden"],
    extra_link_args=["-pthread"], optional=True)])

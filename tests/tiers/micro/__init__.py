"""Tests of levels 1 and 2: cutting layers and stacks out of ONNX models, and their synthetic inputs."""

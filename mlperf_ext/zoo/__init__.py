"""Model zoo: trained MLP/CNV families and standard architectures, each in several precisions.

Public API (see registry.py): `list_models`, `build`, `model_path`, `read_metadata`,
`register_family`, plus `runnable_on` (compat.py) for backend/variant compatibility facts.
"""

from mlperf_ext.zoo.compat import runnable_on
from mlperf_ext.zoo.metadata import PRECISIONS, ModelInfo, read_metadata
from mlperf_ext.zoo.registry import (
           build,
           list_models,
           model_info,
           model_path,
           register_family,
           unregister_family,
)

__all__ = ["PRECISIONS", "ModelInfo", "build", "list_models", "model_info", "model_path", "read_metadata",
           "register_family", "runnable_on", "unregister_family"]

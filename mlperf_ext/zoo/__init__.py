"""Model zoo: trained MLP/CNV families and standard architectures, each in several precisions.

Public API (see registry.py): `list_models`, `build`, `model_path`, `read_metadata`,
`register_family`. Which backend runs which variant is each backend's own fact (`supports` in sut/).
"""

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
           "register_family", "unregister_family"]

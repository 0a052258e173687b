"""Errors a user can cause. The CLI prints one line (problem and fix) and exits 2 for these."""

from __future__ import annotations


class MlperfExtError(Exception):
    """Base class for user-facing errors: the message names the problem and the fix."""

    exit_code = 2


class ConfigError(MlperfExtError):
    """A spec, CLI option or user.conf that cannot be used as given."""


class ModelError(MlperfExtError):
    """A model file that is missing, corrupt, or cannot run with the requested options."""


class DatasetError(MlperfExtError):
    """A dataset that is missing, malformed, or does not fit the model."""


class BackendUnavailable(MlperfExtError):
    """A backend whose runtime is not installed; the message names the pip extra."""

    def __init__(self, backend: str, extra: str, detail: str = ""):
        msg = f"backend '{backend}' needs a runtime that is not installed"
        if detail:
            msg += f" ({detail})"
        msg += f"; fix: pip install 'mlperf-ext[{extra}]'"
        super().__init__(msg)
        self.backend = backend
        self.extra = extra


class UnsupportedVariant(MlperfExtError):
    """A backend that cannot run this model variant (e.g. INT2 on OpenVINO); the message says why."""

"""One module per LoadGen scenario: its dispatch policy and the hints it derives for LoadGen."""

from __future__ import annotations

from mlperf_ext.errors import ConfigError
from mlperf_ext.loadgen import SCENARIOS as SCENARIO_NAMES
from scenarios.base import ComputeEstimate, DispatchConfig, Scenario
from scenarios.multi_stream import MultiStream
from scenarios.offline import Offline
from scenarios.server import Server
from scenarios.single_stream import SingleStream

SCENARIOS: dict[str, type] = {cls.name: cls for cls in (SingleStream, MultiStream, Server, Offline)}
assert tuple(SCENARIOS) == SCENARIO_NAMES, "a scenario module per LoadGen scenario, in LoadGen's order"


def get_scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{name}'; fix: use one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name]()


__all__ = ["ComputeEstimate", "DispatchConfig", "SCENARIOS", "Scenario", "get_scenario"]

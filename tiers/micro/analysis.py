"""What the microbenchmarks say, per backend: each layer against level 0, where the time goes by op type,
the sum of the parts against the whole model, and the runtime profiler's view of the same.

- Per layer: level 0's ops, weight bytes, activation bytes and OI at the point's batch, the roofline's
  predicted time on the row's platform at the datatype that executed, its bound, and the efficiency
  (predicted / measured time). Measured time is the compute latency of one execution at that batch.
- Per op type: the share of the model's time (each layer's time x its occurrences) next to its share of
  the model's ops.
- Sum of the parts: sum of level-1 times x occurrences over the whole model's measured time (level 3), and
  for each stack size the stacks' times x occurrences plus the level-1 times of the layers no stack
  covered, over level 3. Above 1: the layers cost more alone (launch and memory traffic a fused graph
  avoids); below 1: the whole graph has overheads the layers do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlperf_ext.result import PointResult
from tiers.micro.bench import MicroTarget
from tiers.micro.cut import CutSet


@dataclass
class LayerRow:
    backend: str
    level: str  # "1", "2x2", "2x4"
    name: str
    op_type: str
    occurrences: int
    ops: float  # per input
    weight_bytes: float
    activation_bytes: int  # at the batch
    oi: float | None  # batch x ops / weight bytes
    measured_ms: float | None  # compute latency of one execution at the batch
    system_p90_ms: float | None  # SingleStream p90 (batch 1)
    predicted_ms: float | None
    bound: str
    efficiency: float | None  # predicted / measured time
    executed: str  # the datatype that executed


@dataclass
class SumOfParts:
    backend: str
    level: str
    parts_ms: float
    whole_ms: float
    missing: list[str] = field(default_factory=list)  # parts without a measurement

    @property
    def ratio(self) -> float:
        return self.parts_ms / self.whole_ms


def by_scenario(target: MicroTarget, backend: str, scenario: str) -> PointResult | None:
    """The stored result of one of the target's points (None when it has none or did not run ok)."""
    for point, result in zip(target.points, target.results):
        if point.backend == backend and point.scenario == scenario:
            return result if result is not None and result.status == "ok" else None
    return None


def layer_rows(targets: list[MicroTarget], backends: list[str], batch: int, predict) -> list[LayerRow]:
    """`predict(cost, dtype, batch) -> (inputs/s, bound) | None`: the roofline on the rows' platform."""
    rows = []
    for target in targets:
        if target.cut is None:
            continue
        cut = target.cut
        label = "1" if target.level == 1 else f"2x{target.size}"
        for backend in backends:
            offline = by_scenario(target, backend, "Offline")
            single = by_scenario(target, backend, "SingleStream")
            measured = offline.compute.lat_mean_ms if offline and offline.compute else None
            executed = (offline.runtime.compute_dtype if offline and offline.runtime else "") or cut.cost.stored_precision
            prediction = predict(cut.cost, executed, batch) if executed else None
            predicted_ms = 1e3 * batch / prediction[0] if prediction else None
            rows.append(LayerRow(
                backend=backend, level=label, name=cut.name, op_type=cut.op_type, occurrences=cut.occurrences,
                ops=float(cut.ops), weight_bytes=float(cut.weight_bytes), activation_bytes=cut.activation_bytes(batch),
                oi=batch * cut.ops / cut.weight_bytes if cut.weight_bytes else None, measured_ms=measured,
                system_p90_ms=single.system.lat_p90_ms if single and single.system else None,
                predicted_ms=predicted_ms, bound=prediction[1] if prediction else "",
                efficiency=predicted_ms / measured if predicted_ms and measured else None, executed=executed))
    return rows


def op_type_breakdown(rows: list[LayerRow], backend: str) -> list[tuple[str, float, float, int]]:
    """(op type, share of level-1 time, share of level-1 ops, layers) for one backend, by time share."""
    mine = [r for r in rows if r.backend == backend and r.level == "1" and r.measured_ms is not None]
    time_total = sum(r.measured_ms * r.occurrences for r in mine)
    ops_total = sum(r.ops * r.occurrences for r in mine)
    by: dict[str, list[float]] = {}
    for r in mine:
        entry = by.setdefault(r.op_type, [0.0, 0.0, 0])
        entry[0] += r.measured_ms * r.occurrences
        entry[1] += r.ops * r.occurrences
        entry[2] += r.occurrences
    out = [(op, t / time_total if time_total else 0.0, o / ops_total if ops_total else 0.0, int(n))
           for op, (t, o, n) in by.items()]
    return sorted(out, key=lambda x: -x[1])


def sums_of_parts(rows: list[LayerRow], sets: dict[str, CutSet], whole: dict[str, float | None]) -> list[SumOfParts]:
    """Per backend and level: the parts' time against the whole model's (`whole`: backend -> ms)."""
    out = []
    for backend, whole_ms in whole.items():
        if not whole_ms:
            continue
        level1 = {r.name: r for r in rows if r.backend == backend and r.level == "1"}
        layer_time = {}
        if "1" in sets:
            for cut in sets["1"].cuts:
                for instance in cut.instances:
                    for layer in instance:
                        layer_time[layer] = level1[cut.name].measured_ms if cut.name in level1 else None
        for label, cutset in sets.items():
            mine = [r for r in rows if r.backend == backend and r.level == label]
            missing = [r.name for r in mine if r.measured_ms is None]
            parts = sum(r.measured_ms * r.occurrences for r in mine if r.measured_ms is not None)
            if label != "1":
                for layer in cutset.uncovered:
                    if layer_time.get(layer) is None:
                        missing.append(layer)
                    else:
                        parts += layer_time[layer]
            out.append(SumOfParts(backend, label, parts, whole_ms, missing))
    return out

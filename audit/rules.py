"""One MLPerf Inference round's submission rules, as data the checker and the packager read.

Everything here is a fact taken from a public file of github.com/mlcommons/inference (the snapshot
this project pins, LoadGen 6.0.17, which carries the v6.1 round's seeds). Each constant names its
file; "constants.py" means `tools/submission/submission_checker/constants.py` (`MODEL_CONFIG["v6.1"]`
unless said otherwise) and "mlperf.conf" means `loadgen/mlperf.conf`, the file LoadGen embeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlperf_ext.config import DEFAULT_TASK
from mlperf_ext.errors import ConfigError
from mlperf_ext.loadgen import SCENARIOS  # the one list of LoadGen scenario names

#: scenario directory names the checker accepts, lower-cased (constants.py SCENARIO_MAPPING)
SCENARIO_DIR_NAMES = {s.lower(): s for s in SCENARIOS}

#: constants.py VALID_DIVISIONS, VALID_AVAILABILITIES and system_check.py `system_type_check`
DIVISIONS = ("closed", "open", "network")
SYSTEM_STATUSES = ("available", "preview", "rdi")
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")

#: scenarios that are judged by LoadGen's early-stopping estimate (configuration.py `uses_early_stopping`)
EARLY_STOPPING_SCENARIOS = ("SingleStream", "MultiStream", "Server")

#: the metric each scenario is ranked by (constants.py RESULT_FIELD_NEW["v6.1"]); SS/MS are reported in ms
RESULT_FIELD = {
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
    "Server": "result_completed_samples_per_sec",
    "Offline": "result_samples_per_second",
}
#: constants.py UNIT_DICT
RESULT_UNITS = {
    "SingleStream": "Latency (ms)",
    "MultiStream": "Latency (ms)",
    "Server": "Queries/s",
    "Offline": "Samples/s",
}
NS_PER_MS = 1_000_000

#: constants.py SYSTEM_DESC_REQUIRED_FIELDS (every systems/<id>.json must have each key)
SYSTEM_REQUIRED_FIELDS = (
    "division",
    "submitter",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_storage_capacity",
    "host_storage_type",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "framework",
    "operating_system",
    "system_type",
    "other_software_stack",
    "host_processor_frequency",
    "host_processor_caches",
    "host_memory_configuration",
    "host_processor_interconnect",
    "host_networking",
    "host_networking_topology",
    "accelerator_frequency",
    "accelerator_host_interconnect",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "accelerator_memory_configuration",
    "accelerator_on-chip_memories",
    "cooling",
    "hw_notes",
    "sw_notes",
    "host_network_card_count",
    "system_type_detail",
)
#: constants.py SYSTEM_DESC_MEANINGFUL_RESPONSE_REQUIRED_FIELDS: the value must be truthy in Python
#: (system_check.py `required_fields_check` tests `not value`), so a CPU-only system writes
#: "accelerators_per_node": "0", never the number 0
SYSTEM_MEANINGFUL_FIELDS = (
    "division",
    "submitter",
    "system_type",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_memory_configuration",
    "host_storage_capacity",
    "host_storage_type",
    "host_networking",
    "host_network_card_count",
    "host_networking_topology",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "accelerator_host_interconnect",
    "accelerator_memory_configuration",
    "accelerator_interconnect",
    "cooling",
    "framework",
    "operating_system",
    "other_software_stack",
)
#: constants.py SYSTEM_DESC_IS_NETWORK_MODE and SYSTEM_DESC_REQUIRED_FIELDS_NETWORK_MODE
SYSTEM_NETWORK_FLAG = "is_network"
SYSTEM_NETWORK_FIELDS = (
    "is_network",
    "network_type",
    "network_media",
    "network_rate",
    "nic_loadgen",
    "number_nic_loadgen",
    "net_software_stack_loadgen",
    "network_protocol",
    "number_connections",
    "nic_sut",
    "number_nic_sut",
    "net_software_stack_sut",
    "network_topology",
)


def is_meaningful(value: object) -> bool:
    """The checker's truthiness rule for required fields: 0, "", [], None and False are empty."""
    return bool(value)


#: constants.py SYSTEM_IMP_REQUIRED_FILES: required (and truthy) keys of each measurements.json
MEASUREMENTS_REQUIRED_FIELDS = (
    "input_data_types",
    "retraining",
    "starting_weights_filename",
    "weight_data_types",
    "weight_transformations",
)

#: constants.py MAX_ACCURACY_LOG_SIZE; tools/submission/truncate_accuracy_log.py VIEWABLE_SIZE
MAX_ACCURACY_LOG_SIZE = 10 * 1024
ACCURACY_VIEWABLE_SIZE = 4096
#: accuracy_check.py: the line truncate_accuracy_log.py appends to accuracy.txt
HASH_LINE_PATTERN = r"^hash=([\w\d]+)$"

#: compliance/TEST01/verify_performance.py and compliance/TEST04/verify_performance.py (`threshold`)
COMPLIANCE_PERF_TOLERANCE = 0.10
COMPLIANCE_PERF_TOLERANCE_SHORT = 0.20
#: ... applied when the reference latency is short: SingleStream <= 200 us, MultiStream <= 1.6 ms (ns).
#: TEST01/verify_performance.py tests the detail log's early-stopping latency (ns) against these, as the
#: scripts' comment intends ("latencies can be very short for high performance systems").
SHORT_LATENCY_NS = {"SingleStream": 200_000, "MultiStream": 1_600_000}
#: TEST04/verify_performance.py lines 55-67 and 150-153 turn the SS/MS estimate into a rate (1e9 / ns)
#: first and test THAT against the same numbers: the 20 % applies whenever the rate is at most 200000/s
#: (SS) or 1600000/s (MS), i.e. for any latency of at least 5 us (SS) or 625 ns (MS). The tree carries
#: this verdict; the checker warns where the latency reading above would have failed the run.
TEST04_SHORT_RATE_BOUND = {"SingleStream": 200_000.0, "MultiStream": 1_600_000.0}
#: constants.py REQUIRED_COMP_PER_FILES and compliance_check.py (accuracy json optional, trace ignored:
#: utils.py files_diff)
COMPLIANCE_PERF_FILES = ("mlperf_log_detail.txt", "mlperf_log_summary.txt")
COMPLIANCE_PERF_OPTIONAL_FILES = ("mlperf_log_accuracy.json", "mlperf_log_trace.json")
#: compliance/TEST01/create_accuracy_baseline.sh files (the non-deterministic TEST01 path,
#: constants.py REQUIRED_TEST01_ACC_FILES)
TEST01_BASELINE_FILES = ("baseline_accuracy.txt", "compliance_accuracy.txt")
#: constants.py REQUIRED_TEST01_ACC_FILES: TEST01/accuracy/ must hold exactly these for the fallback
TEST01_ACCURACY_FILES = ("mlperf_log_accuracy.json", "accuracy.txt", *TEST01_BASELINE_FILES)
#: utils.py files_diff: names every file-list comparison ignores
UNLISTED_FILES = ("mlperf_log_trace.json", "results.json", ".gitkeep")
#: what LoadGen logs when it applies an audit.config (loadgen/loadgen.cc, StartTest)
AUDIT_CONFIG_FOUND = "Found Audit Config file (audit.config)"

#: compliance/TEST01/<model>/audit.config: the accuracy-log seed is the same for every model
TEST01_ACCURACY_LOG_RNG_SEED = 720381539243781796
#: compliance/TEST04/audit.config: the same sample (index 3) issued over and over
TEST04_ISSUE_SETTINGS = {
    "performance_issue_unique": 0,
    "performance_issue_same": 1,
    "performance_issue_same_index": 3,
}


@dataclass(frozen=True)
class BenchmarkRules:
    """The facts the checker needs about one benchmark of a round."""

    name: str  # the official directory name, e.g. "resnet"
    loadgen_model: str  # the model name mlperf.conf and user.conf use, e.g. "resnet50"
    performance_sample_count: int  # constants.py "performance-sample-count"
    dataset_size: int  # constants.py "dataset-size" (an accuracy run must cover all of it)
    accuracy_metric: str  # constants.py "accuracy-target" key into ACC_PATTERN
    accuracy_pattern: str  # constants.py ACC_PATTERN[accuracy_metric]
    accuracy_target: float  # closed division only
    #: constants.py "accuracy-delta-perc"/configuration.py get_delta_perc: TEST01 non-deterministic path
    accuracy_delta_percent: float
    offline_min_samples_per_query: int  # constants.py OFFLINE_MIN_SPQ_SINCE_V4 (closed division)
    min_queries: dict[str, int]  # constants.py "min-queries" (checked for non-early-stopping scenarios)
    latency_bound_ns: dict[str, int]  # constants.py "latency-constraint"
    compliance_tests: tuple[str, ...]  # constants.py "models_TEST01"/"models_TEST04"
    #: system type -> required scenarios (constants.py "required-scenarios-*"); a type that is absent
    #: means the benchmark is not part of that suite
    required_scenarios: dict[str, tuple[str, ...]]
    test01_sampling_target: int  # compliance/TEST01/<loadgen_model>/audit.config
    #: mlperf.conf min_query_count per scenario for this model (LoadGen's own default is 100)
    mlperf_conf_min_query_count: dict[str, int] = field(default_factory=dict)
    #: where TEST01's audit.config lives upstream
    test01_audit_config_source: str = ""
    #: the harness task whose accuracy line the benchmark's pattern reads (tasks/): a run of another task is refused
    task: str = DEFAULT_TASK


_RESNET = BenchmarkRules(
    name="resnet",
    loadgen_model="resnet50",
    performance_sample_count=1024,
    dataset_size=50000,
    accuracy_metric="acc",
    accuracy_pattern=r"^(?:\{\"accuracy|accuracy)[\": ]*=?\s*([\d\.]+).*",
    accuracy_target=76.46 * 0.99,
    accuracy_delta_percent=1.0,
    offline_min_samples_per_query=24576,
    min_queries={"SingleStream": 1024, "MultiStream": 270336, "Server": 270336, "Offline": 1},
    latency_bound_ns={"Server": 15_000_000},  # also mlperf.conf resnet50.Server.target_latency = 15
    compliance_tests=("TEST01", "TEST04"),  # also compliance/README.md
    required_scenarios={
        "edge": ("SingleStream", "MultiStream", "Offline"),
        "datacenter,edge": ("SingleStream", "MultiStream", "Offline", "Server"),
        "edge,datacenter": ("SingleStream", "MultiStream", "Offline", "Server"),
    },
    test01_sampling_target=4096,
    mlperf_conf_min_query_count={"MultiStream": 662, "Offline": 24576},
    test01_audit_config_source="compliance/TEST01/resnet50/audit.config",
)

_YOLO = {
    f"yolo-{pct}": BenchmarkRules(
        name=f"yolo-{pct}",
        loadgen_model="yolo",
        performance_sample_count=64,
        dataset_size=1525,
        accuracy_metric="mAP",
        accuracy_pattern=r".*(?:mAP=|'Total':)\s*([\d.]+)",
        accuracy_target=53.4 * (0.95 if pct == 95 else 0.99),
        accuracy_delta_percent=1.0,
        offline_min_samples_per_query=1525,
        min_queries={"SingleStream": 1024, "MultiStream": 270336, "Offline": 1},
        latency_bound_ns={},
        compliance_tests=("TEST01",),
        required_scenarios={
            "edge": ("SingleStream", "MultiStream", "Offline"),
            "datacenter,edge": ("SingleStream", "MultiStream", "Offline"),
            "edge,datacenter": ("SingleStream", "MultiStream", "Offline"),
        },
        test01_sampling_target=64,
        mlperf_conf_min_query_count={"MultiStream": 662},
        test01_audit_config_source="compliance/TEST01/yolo/audit.config",
        task="detection",  # accuracy-coco.py's 7 float32 per detection, mAP=XX.XXX%
    )
    for pct in (95, 99)
}


@dataclass(frozen=True)
class RoundRules:
    """One round: seeds, durations, percentiles and its benchmarks."""

    version: str
    loadgen_version: str  # the LoadGen release whose embedded mlperf.conf carries these seeds
    seeds: dict[str, int]  # constants.py "seeds" == mlperf.conf *.*.*_rng_seed
    min_duration_ms: int  # constants.py TEST_DURATION_MS == mlperf.conf *.<scenario>.min_duration
    #: mlperf.conf *.<scenario>.target_latency_percentile (as LoadGen logs it, a fraction)
    target_latency_percentile: dict[str, float]
    #: TestSettings' min_query_count when mlperf.conf sets none (loadgen/test_settings.h)
    loadgen_default_min_query_count: int
    benchmarks: dict[str, BenchmarkRules]
    #: constants.py "model_mapping": names the checker maps to an official benchmark by itself
    model_mapping: dict[str, str]
    #: configuration.py get_mlperf_model's last resort (lines 96-108): the first (substring, name) whose
    #: substring is in the directory name gives the name, which is then mapped again
    model_name_guesses: tuple[tuple[str, str], ...] = ()

    def benchmark(self, name: str, model_mapping: dict[str, str] | None = None) -> BenchmarkRules:
        """The rules of a benchmark directory name, after the round's and the submitter's mapping
        (configuration.py get_mlperf_model: official name, built-in mapping, model_mapping.json)."""
        found = self.find_benchmark(name, model_mapping)
        if found is None:
            raise ConfigError(
                f"benchmark '{name}' is not one this checker knows for {self.version}; fix: use "
                f"one of {', '.join(sorted(self.benchmarks))} (or map it in model_mapping.json "
                "of an open-division submitter)"
            )
        return found

    def find_benchmark(self, name: str, model_mapping: dict[str, str] | None = None) -> BenchmarkRules | None:
        """Official name, the round's mapping, the submitter's, then upstream's guess (resnet50-v1.5 -> resnet)."""
        if name in self.benchmarks:
            return self.benchmarks[name]
        mapped = self.model_mapping.get(name) or (model_mapping or {}).get(name)
        if mapped:
            return self.benchmarks.get(mapped)
        guess = next((target for part, target in self.model_name_guesses if part in name), name)
        return self.benchmarks.get(self.model_mapping.get(guess, guess))

    def min_query_count_floor(self, bench: BenchmarkRules, scenario: str) -> int:
        """The min_query_count LoadGen applies when a user.conf lowers nothing."""
        return bench.mlperf_conf_min_query_count.get(scenario, self.loadgen_default_min_query_count)


V6_1 = RoundRules(
    version="v6.1",
    loadgen_version="6.0.17",
    seeds={
        "qsl_rng_seed": 2085463073848966840,
        "sample_index_rng_seed": 2747215439041700203,
        "schedule_rng_seed": 16159082839903944936,
    },
    min_duration_ms=600000,
    target_latency_percentile={"SingleStream": 0.90, "MultiStream": 0.99, "Server": 0.99},
    loadgen_default_min_query_count=100,
    benchmarks={"resnet": _RESNET, **_YOLO},
    model_mapping={"resnet50": "resnet", "mobilenet": "resnet"},
    model_name_guesses=(
        ("mobilenet", "resnet"),
        ("efficientnet", "resnet"),
        ("resnet50", "resnet"),
        ("bert-99.9", "bert-99.9"),
        ("bert-99", "bert-99"),
        ("llama3_1-405b", "llama3.1-405b"),
    ),
)

ROUNDS = {"v6.1": V6_1}


def round_rules(version: str) -> RoundRules:
    """The rules of a round; ConfigError for a round this checker does not carry."""
    if version not in ROUNDS:
        raise ConfigError(
            f"unknown submission round '{version}'; fix: use one of {', '.join(ROUNDS)} "
            "(the round whose seeds the pinned LoadGen carries)"
        )
    return ROUNDS[version]


_AUDIT_HEADER = (
    "# The format of this config file is 'key = value'.\n"
    "# The key has the format 'model.scenario.key'. Value is mostly int64_t.\n"
    "# Model maybe '*' as wildcard. In that case the value applies to all models.\n"
    "# All times are in milli seconds\n"
)

COMPLIANCE_TESTS = ("TEST01", "TEST04")


def audit_config_text(test: str, benchmark: str, version: str = "v6.1") -> str:
    """The `audit.config` LoadGen must find in its working directory for a compliance test.

    TEST01 (compliance/TEST01/<model>/audit.config): performance mode, with a random sample of the
    responses logged (seed and sampling target from that file). TEST04 (compliance/TEST04/audit.config):
    performance mode, the same sample issued again and again, in every scenario. LoadGen reads the
    file with model '*' (loadgen.cc StartTest), so only '*' lines matter.
    """
    bench = round_rules(version).benchmark(benchmark)
    if test not in COMPLIANCE_TESTS:
        raise ConfigError(f"unknown compliance test '{test}'; fix: use one of {', '.join(COMPLIANCE_TESTS)}")
    if test not in bench.compliance_tests:
        raise ConfigError(
            f"{bench.name} does not take compliance test {test} in {version}; fix: run "
            f"{' and '.join(bench.compliance_tests)}"
        )
    if test == "TEST01":
        return (
            f"# source: github.com/mlcommons/inference {bench.test01_audit_config_source}\n"
            + _AUDIT_HEADER
            + "\n# mode dictionary (0 = submission, 1 = accuracy, 2 = performance, 3 = find peak perf)\n"
            "*.*.mode = 2\n"
            f"*.*.accuracy_log_rng_seed = {TEST01_ACCURACY_LOG_RNG_SEED}\n"
            f"*.*.accuracy_log_sampling_target = {bench.test01_sampling_target}\n"
        )
    lines = ["# source: github.com/mlcommons/inference compliance/TEST04/audit.config\n", _AUDIT_HEADER]
    for scenario in ("MultiStream", "Offline", "SingleStream", "Server"):
        lines.append(f"*.{scenario}.mode = 2\n")
        lines.extend(f"*.{scenario}.{k} = {v}\n" for k, v in TEST04_ISSUE_SETTINGS.items())
    return "".join(lines)


__all__ = [
    "BenchmarkRules",
    "COMPLIANCE_TESTS",
    "DIVISIONS",
    "MEASUREMENTS_REQUIRED_FIELDS",
    "RESULT_FIELD",
    "ROUNDS",
    "RoundRules",
    "SCENARIOS",
    "SYSTEM_MEANINGFUL_FIELDS",
    "SYSTEM_REQUIRED_FIELDS",
    "SYSTEM_STATUSES",
    "SYSTEM_TYPES",
    "V6_1",
    "audit_config_text",
    "is_meaningful",
    "round_rules",
]

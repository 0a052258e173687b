"""The submission checker: MLCommons' v6.1 checks (tools/submission/submission_checker/checks/ in
github.com/mlcommons/inference) and the refusals that checker misses, one module per concern.

Entry points: `check_tree` / `check_tree_report` (a whole tree), `check_run` (one LoadGen run: the
results store's `compliant` verdict), `write_summary_csv` (the --csv summary), `RULES` (the catalogue).
"""

from audit.checker.performance import check_run
from audit.checker.problems import RULES, Problem
from audit.checker.summary import CSV_COLUMNS, ResultRow, write_summary_csv
from audit.checker.tree import TreeReport, check_tree, check_tree_report

__all__ = [
    "CSV_COLUMNS",
    "Problem",
    "RULES",
    "ResultRow",
    "TreeReport",
    "check_run",
    "check_tree",
    "check_tree_report",
    "write_summary_csv",
]

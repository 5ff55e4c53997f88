# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a model run's results: the ``performance:`` line, multiple_results CSVs,
error signatures in the log, and the status rules (MAD-FORMAT section 4).

:class:`LogScanner` reads the log as it streams, in bounded memory, so a model that
prints gigabytes is scanned without ever holding its log.
"""
from __future__ import annotations

import codecs
import csv
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import PERF_COLUMNS

PERF_REGEX = (r"performance:\s+([+\-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+\-]?[0-9]+)?)"
              r"(?:,?\s*/[a-zA-Z]+\s*,?|,)?\s+([^\s,]+)")
PERF_RE = re.compile(PERF_REGEX)

# Literal substrings; a log line holding one fails the run (unless a benign one is there too).
DEFAULT_ERROR_PATTERNS: Tuple[str, ...] = (
    "Traceback (most recent call last)",
    "out of memory",
    "OutOfMemoryError",
    "RuntimeError:",
    "AssertionError:",
    "ModuleNotFoundError:",
    "ImportError:",
    "Segmentation fault",
    "core dumped",
    "failed (exitcode:",
)

SUCCESS, FAILURE, SKIPPED = "SUCCESS", "FAILURE", "SKIPPED"

_MAX_LINE = 1 << 20  # a "line" longer than this is scanned in pieces
_CARRY = 4096  # text kept after a block so a performance line split over lines still matches


def parse_performance(text: str) -> Optional[Tuple[str, str]]:
    """The first ``performance: <value> <metric>`` in ``text``, as strings, or ``None``."""
    match = PERF_RE.search(text)
    return (match.group(1), match.group(2)) if match else None


def to_number(value: str) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None  # NaN or inf is no performance


@dataclass
class ErrorScan:
    """Which substrings fail a run. Built from context/model by :func:`error_scan_config`."""

    enabled: bool = True
    patterns: Tuple[str, ...] = DEFAULT_ERROR_PATTERNS
    benign: Tuple[str, ...] = ()


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInputError(f"{key} must be true or false, got {value!r}", "additional context")


def _as_strings(value: Any, key: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise InvalidInputError(f"{key} must be a non-empty list of non-empty strings, got {value!r}",
                                "additional context")
    return tuple(value)


def error_scan_config(context: Dict[str, Any], model: Dict[str, Any]) -> ErrorScan:
    """``log_error_pattern_scan``/``log_error_patterns``/``log_error_benign_patterns``.

    The context wins over the model entry for the switch and the pattern list; benign
    patterns from both are used.
    """
    def pick(key: str) -> Any:
        return context[key] if key in context else model.get(key)

    scan = ErrorScan()
    switch = pick("log_error_pattern_scan")
    if switch is not None:
        scan.enabled = _as_bool(switch, "log_error_pattern_scan")
    patterns = pick("log_error_patterns")
    if patterns is not None:
        scan.patterns = _as_strings(patterns, "log_error_patterns")
    benign: List[str] = []
    for source in (model, context):
        if source.get("log_error_benign_patterns") is not None:
            benign.extend(_as_strings(source["log_error_benign_patterns"],
                                      "log_error_benign_patterns"))
    scan.benign = tuple(benign)
    return scan


@dataclass
class LogScanner:
    """Feed it the log's bytes as they arrive; it finds the first performance line and
    the first error signature while holding at most about one megabyte."""

    errors: ErrorScan = field(default_factory=ErrorScan)
    performance: Optional[str] = None
    metric: Optional[str] = None
    error_pattern: Optional[str] = None
    error_line: Optional[str] = None
    bytes_seen: int = 0

    def __post_init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # the incomplete last line
        self._carry = ""  # tail of the previous block that may start a performance match

    def feed(self, data: bytes) -> None:
        self.bytes_seen += len(data)
        text = self._pending + self._decoder.decode(data)
        cut = text.rfind("\n")
        if cut < 0 and len(text) < _MAX_LINE:
            self._pending = text
            return
        if cut < 0:
            cut = len(text) - 1
        self._pending = text[cut + 1:]
        self._scan(text[:cut + 1])

    def finish(self) -> None:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if rest:
            self._scan(rest)

    def _scan(self, block: str) -> None:
        if self.performance is None:
            window = self._carry + block
            match = PERF_RE.search(window)
            if match:
                self.performance, self.metric = match.group(1), match.group(2)
                self._carry = ""
            else:
                start = window.rfind("performance:", max(0, len(window) - _CARRY))
                self._carry = window[start:] if start >= 0 else ""
        if self.errors.enabled and self.error_pattern is None:
            self._scan_errors(block)

    def _scan_errors(self, block: str) -> None:
        best: Optional[Tuple[int, str, str]] = None
        for pattern in self.errors.patterns:
            pos = block.find(pattern)
            while pos >= 0 and (best is None or pos < best[0]):
                start = block.rfind("\n", 0, pos) + 1
                end = block.find("\n", pos)
                end = len(block) if end < 0 else end
                line = block[start:end]
                if not any(b in line for b in self.errors.benign):
                    best = (pos, pattern, line)
                    break
                pos = block.find(pattern, end)
        if best is not None:
            self.error_pattern, self.error_line = best[1], best[2].strip()[:300]


@dataclass
class ResultRow:
    """One row of a multiple_results CSV: its model suffix, performance, metric, extras."""

    suffix: str
    performance: Optional[float]
    performance_text: str
    metric: str
    extras: Dict[str, str] = field(default_factory=dict)
    problem: Optional[str] = None


def parse_multiple_results(text: str, name: str) -> List[ResultRow]:
    """Rows of a multiple_results CSV (columns ``model,performance,metric`` at least).

    A row without a usable performance comes back with ``problem`` set. A file that is
    not such a CSV raises :class:`InvalidInputError` naming it.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInputError(f"multiple_results file {name} is empty") from None
    missing = [c for c in ("model", "performance", "metric") if c not in header]
    if missing:
        raise InvalidInputError(
            f"multiple_results file {name} lacks the column(s) {', '.join(missing)}",
            fix="Its header must have model,performance,metric")
    rows: List[ResultRow] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        values = dict(zip(header, (c.strip() for c in cells)))
        raw = values.get("performance", "")
        number = to_number(raw)
        extras = {k: v for k, v in values.items()
                  if k not in ("model", "performance", "metric") and k}
        row = ResultRow(values.get("model", ""), number, raw, values.get("metric", ""), extras)
        if number is None:
            row.problem = (f"no performance for {row.suffix!r} in {name}" if not raw
                           else f"performance {raw!r} for {row.suffix!r} in {name} is not a number")
        rows.append(row)
    if not rows:
        raise InvalidInputError(f"multiple_results file {name} has no result rows")
    return rows


def run_status(exit_code: Optional[int], timed_out: bool, timeout_s: Optional[int],
               has_performance: bool, error_pattern: Optional[str] = None,
               error_line: Optional[str] = None) -> Tuple[str, str]:
    """(status, reason) of a run that happened, by the MAD-FORMAT rules."""
    if timed_out:
        return FAILURE, f"timeout after {timeout_s} s"
    if exit_code is None:
        return FAILURE, "the container's exit status is unknown"
    if exit_code != 0:
        return FAILURE, f"exit code {exit_code}"
    if error_pattern is not None:
        return FAILURE, f"error signature {error_pattern!r} in the log: {error_line}"
    if not has_performance:
        return FAILURE, "no performance in the log"
    return SUCCESS, ""


def perf_row(base: Dict[str, Any], **values: Any) -> Dict[str, Any]:
    """A perf row with every perf.csv column (empty when unknown) plus extra columns."""
    row: Dict[str, Any] = {c: "" for c in PERF_COLUMNS}
    row.update(base)
    row.update(values)
    return row


def summarize_rows(rows: Sequence[Dict[str, Any]]) -> Tuple[str, str]:
    """Model status from its rows: SUCCESS only when every row is."""
    failed = [r for r in rows if r.get("status") != SUCCESS]
    if not failed:
        return SUCCESS, ""
    reasons = [str(r.get("reason") or "") for r in failed]
    if len(rows) == 1:
        return str(failed[0].get("status")), reasons[0]
    return FAILURE, f"{len(failed)} of {len(rows)} results failed: {reasons[0]}"

# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""perf.csv: the columns, the rows, and an append that never rewrites and never interleaves.

The file is a plain rectangular CSV that pandas (and the existing consumers of madengine
output) read as it is: one header line, then one line per result.

Columns
    The 29 columns of MAD-FORMAT section 6, in that order, then the extra columns.
    A file this module creates gets the header
    ``<29 columns>, reason, image_digest, <extras of the first batch>, extras``:
    ``reason`` and ``image_digest`` are always there (every run has them), the extra
    columns of the first batch (multiple_results extras) follow in the order they first
    appear, and ``extras`` closes the header.

Extra columns that appear later
    The header is written once and existing rows are never rewritten, so a column the
    header lacks cannot be added. Its values go, as a JSON object ``{"column": value}``,
    into the row's ``extras`` cell. A perf.csv written by another tool (upstream madengine)
    may have no ``extras`` column: such values are left out of perf.csv with a warning;
    they stay in perf_entry.json and in the results history. Rows are always written in
    the existing header's order, columns the row lacks are empty: the file stays
    rectangular.

Appending
    ``PerfCsv.locked()`` takes an exclusive ``flock`` on perf.csv itself (after checking
    that the path still names the inode it opened), reads the header, and ``append`` writes
    all rows of a batch with one ``os.write`` on an ``O_APPEND`` descriptor, then fsyncs.
    Concurrent appenders (several playbooks, several processes) therefore queue: exactly
    one header, whole batches, never a torn line. A file that does not end in a newline
    (an edit by hand) gets one before the rows, so no row is glued to the last line.
    Newlines inside values become `` | `` so that each row is one physical line.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

PERF_COLUMNS = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args",
    "tags", "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit",
    "machine_name", "deployment_type", "launcher", "gpu_architecture", "performance", "metric",
    "relative_change", "status", "build_duration", "test_duration", "dataname",
    "data_provider_type", "data_size", "data_download_duration", "build_number",
    "additional_docker_run_options",
)
KNOWN_EXTRAS = ("reason", "image_digest")
OVERFLOW_COLUMN = "extras"
# A header without these is not a perf.csv of any madengine version.
REQUIRED_HEADER = ("model", "performance", "metric", "status")
STATUSES = ("SUCCESS", "FAILURE", "SKIPPED")
# Run-level facts that travel with a record but are not perf.csv columns.
NON_COLUMN_KEYS = ("log_file",)

_NEWLINES = re.compile(r"\s*[\r\n]+\s*")


def to_float(value: Any) -> float | None:
    """A finite float from a number or numeric text; None for empty, text or NaN."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def normalize_row(raw: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None,
                  where: str = "records") -> dict:
    """One perf row: the 29 columns in order (missing ones None), then the extras as given.

    ``tags`` lists are joined with ','; ``performance`` becomes a float; ``status`` is
    upper case and one of SUCCESS/FAILURE/SKIPPED. A SUCCESS without a numeric performance
    is a FAILURE (MAD-FORMAT: SUCCESS = exit 0 *and* a performance value), with the reason.
    ``relative_change`` is cleared: it is computed from the results history.
    ``defaults`` fill columns the row leaves empty (pipeline, build_number, ...).
    """
    data = {str(k).strip(): v for k, v in raw.items() if str(k).strip() not in NON_COLUMN_KEYS}
    model = data.get("model")
    if _empty(model) or not isinstance(model, str):
        raise InvalidInputError(
            f"a perf row has no model name: {_preview(raw)}", where=where,
            fix="Every run record row needs 'model' (the model's name)")
    row: dict = {column: data.get(column) for column in PERF_COLUMNS}
    row.update((k, v) for k, v in data.items() if k not in row)
    for key, value in (defaults or {}).items():
        if _empty(row.get(key)) and not _empty(value):
            row[key] = value
    if isinstance(row.get("tags"), (list, tuple)):
        row["tags"] = ",".join(str(t) for t in row["tags"])
    raw_perf = row.get("performance")
    row["performance"] = to_float(raw_perf)
    row["relative_change"] = None
    status = str(row.get("status") or "").strip().upper() or "SUCCESS"  # judged just below
    if status not in STATUSES:
        raise InvalidInputError(
            f"model {model}: status {row.get('status')!r} is not one of {', '.join(STATUSES)}",
            where=where, fix="Pass the run records as mad_run returns them")
    if status == "SUCCESS" and row["performance"] is None:
        status = "FAILURE"
        if _empty(row.get("reason")):
            row["reason"] = (f"performance {raw_perf!r} is not a number" if not _empty(raw_perf)
                             else "no performance value was reported")
    row["status"] = status
    return row


def header_for(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The header of a new perf.csv: 29 columns, reason, image_digest, this batch's extras, extras."""
    header = list(PERF_COLUMNS) + list(KNOWN_EXTRAS)
    for row in rows:
        for key in row:
            if key not in header and key != OVERFLOW_COLUMN:
                header.append(key)
    return header + [OVERFLOW_COLUMN]


def format_value(value: Any) -> str:
    """A cell: '' for None, ',' joined lists, JSON for dicts, one line for text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str):
        return _NEWLINES.sub(" | ", value.strip()) if ("\n" in value or "\r" in value) else value
    return str(value)


def render_rows(header: Sequence[str], rows: Iterable[Mapping[str, Any]],
                *, with_header: bool = False) -> tuple[str, list[str]]:
    """CSV text of ``rows`` in ``header``'s order, and the columns that had no place.

    Values of columns the header lacks go into the ``extras`` cell as JSON when the header
    has one; otherwise they are named in the second return value (left out of perf.csv).
    """
    names = [h.strip() for h in header]
    has_overflow = OVERFLOW_COLUMN in names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if with_header:
        writer.writerow(header)
    dropped: list[str] = []
    for row in rows:
        leftover = {k: v for k, v in row.items()
                    if k not in names and k != OVERFLOW_COLUMN and not _empty(v)}
        cells = {name: row.get(name) for name in names}
        if leftover:
            if has_overflow:
                merged = dict(row.get(OVERFLOW_COLUMN) or {}) if isinstance(
                    row.get(OVERFLOW_COLUMN), dict) else {}
                merged.update(leftover)
                cells[OVERFLOW_COLUMN] = merged
            else:
                dropped.extend(k for k in leftover if k not in dropped)
        writer.writerow([format_value(cells[name]) for name in names])
    return buffer.getvalue(), dropped


def parse_header(line: str, where: str) -> list[str]:
    """The columns of a perf.csv header line; InvalidInputError when it is not madengine's."""
    try:
        header = next(csv.reader([line.lstrip("\ufeff")]))
    except (csv.Error, StopIteration):
        header = []
    names = [h.strip() for h in header]
    missing = [c for c in REQUIRED_HEADER if c not in names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if missing or duplicated:
        problem = (f"lacks the column(s) {', '.join(missing)}" if missing
                   else f"repeats the column(s) {', '.join(duplicated)}")
        raise InvalidInputError(
            f"{where} is not a madengine perf.csv: its header {problem} "
            f"(first line: {line[:120].strip()!r})", where="perf_csv",
            fix="Point perf_csv at a madengine perf.csv, or a run at a new file; "
                "the file was left untouched")
    return header


def read_header(path: str) -> list[str] | None:
    """The header of an existing perf.csv; None when the file is missing or empty."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory, not a perf.csv file", where="perf_csv",
                                fix="Give the path of a CSV file") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}", where="perf_csv") from None
    if not line.strip():
        return None
    return parse_header(_decode(line, path), path)


def read_rows(path: str) -> tuple[list[str], list[dict]]:
    """The header (stripped names) and the rows of a perf.csv, as text cells; ([], []) when absent."""
    header = read_header(path)
    if header is None:
        return [], []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        names = [h.strip() for h in next(reader)]
        rows = [dict(zip(names, cells)) for cells in reader if any(c.strip() for c in cells)]
    return names, rows


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text, so not a madengine perf.csv",
                                where="perf_csv",
                                fix="Point perf_csv at a madengine perf.csv or at a new file") from None


def _preview(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, sort_keys=True) if isinstance(value, dict) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class LockedPerfCsv:
    """perf.csv while this process holds its lock: the header, and the append."""

    def __init__(self, path: str, fd: int):
        self.path = path
        self._fd = fd
        self.header = self._read_header()

    @property
    def exists(self) -> bool:
        """True when the file already had a header before this append."""
        return self.header is not None

    def _read_header(self) -> list[str] | None:
        chunks, offset = [], 0
        while True:
            chunk = os.pread(self._fd, 65536, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            if b"\n" in chunk:
                break
        line = b"".join(chunks).split(b"\n", 1)[0]
        if not line.strip():
            if os.fstat(self._fd).st_size > len(line) + 1:
                raise InvalidInputError(
                    f"{self.path} starts with an empty line, so it is not a madengine perf.csv",
                    where=self.path, fix="Remove the empty first line or use a new file")
            return None
        return parse_header(_decode(line, self.path), self.path)

    def read_rows(self) -> list[dict]:
        """Every row already in the file (for seeding the results history)."""
        return read_rows(self.path)[1] if self.exists else []

    def append(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append ``rows`` (header first when the file is new); returns the columns left out."""
        if not rows:
            return []
        if self.header is None:
            header = header_for(rows)
            text, dropped = render_rows(header, rows, with_header=True)
            # An empty-but-present file may hold stray blank bytes: start clean.
            if os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, 0)
        else:
            text, dropped = render_rows(self.header, rows)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                text = "\n" + text
        data = text.encode("utf-8")
        written = 0
        while written < len(data):  # a short write happens only on a full disk; finish or fail
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)
        if self.header is None:
            self.header = header_for(rows)
        return dropped


class PerfCsv:
    """A perf.csv path. ``locked()`` serialises every reader-then-appender of the file."""

    def __init__(self, path: str):
        self.path = path

    def peek_header(self) -> list[str] | None:
        """The header without taking the lock (check mode, reports)."""
        return read_header(self.path)

    @contextmanager
    def locked(self) -> Iterator[LockedPerfCsv]:
        if os.path.isdir(self.path):
            raise InvalidInputError(f"{self.path} is a directory, not a perf.csv file",
                                    where="perf_csv", fix="Give the path of a CSV file")
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InvalidInputError(f"cannot open {self.path} for appending: {exc.strerror}",
                                        where="perf_csv",
                                        fix="Choose a writable output directory (--output / madengine_output_dir)"
                                        ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Another process may have replaced the file while we waited: lock the new one.
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        try:
            yield LockedPerfCsv(self.path, fd)
        finally:
            os.close(fd)  # closing releases the flock

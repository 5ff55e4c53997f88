# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From the run records of every host to perf.csv, perf_entry.json and the run summary.

``gather`` accepts the records in the shapes a playbook naturally has at hand:

* a ``mad_run`` result ``{records: [rows], status, reason, log_file, test_duration, ...}``;
* a registered loop ``{results: [mad_run results]}`` (items carry their loop item, e.g.
  the plan entry ``{image, build, model}``; failed items become FAILURE rows, skipped
  items SKIPPED rows);
* a plain perf row ``{model, performance, metric, status, ...}``;
* a dict keyed by host whose values are any of these (or lists of them);
* lists of any of these.

With a ``plan`` (the run entries every node was given) and host names (keys of a host
map, or of ``node_failures``), every planned run that came back from no host gets a
FAILURE row, with the node's failure as its reason. Failed builds (``build_records``:
mad_build records, mad_build results, a manifest, or ``{model, error}`` entries) add a
FAILURE row, ``reason: build failed: <error>``, for models without any row. A failure
always writes a row.

``collect`` then, with perf.csv locked: opens the results history (seeding a new one
from perf.csv), fills ``relative_change`` from the history as it was before this run,
inserts the rows into the history, appends them to perf.csv, commits the history, and
finally writes perf_entry.json (this run's rows) and the run summary JSON atomically.
Everything that can be checked is checked before the first byte is written.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._files import write_json
from ansible_collections.madengine.core.plugins.module_utils._history import (
    DEFAULT_NAME as HISTORY_NAME, fill_relative_change, open_history)
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import (
    PERF_COLUMNS, PerfCsv, normalize_row, read_rows, render_rows, to_float)

EXIT_OK, EXIT_BUILD, EXIT_RUN = 0, 2, 3
SUMMARY_FIELDS = ("model", "node", "machine_name", "status", "performance", "metric",
                  "relative_change", "gpu_architecture", "docker_image", "build_duration",
                  "test_duration", "reason", "log_file", "image_digest")
_PLAN_MODEL_FIELDS = ("n_gpus", "args", "tags", "training_precision", "additional_docker_run_options")
_PLAN_BUILD_FIELDS = (("docker_file", "dockerfile"), ("base_docker", "base_docker"),
                      ("docker_sha", "docker_sha"), ("docker_image", "docker_image"),
                      ("build_duration", "build_duration"), ("gpu_architecture", "gpu_architecture"))


@dataclass
class Result:
    """One perf row and what the summary says beside it."""

    row: dict
    node: str = ""
    log_file: str | None = None
    run_model: str | None = None  # the model the run was for (multiple_results rows differ)
    run_image: str | None = None
    origin: str = "run"  # run | plan (no result came back) | build (the build failed)


@dataclass
class Gathered:
    results: list[Result] = field(default_factory=list)
    build_failures: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- gathering


def _name_of(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, Mapping):
        for key in ("name", "model"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key].strip()
    return None


def _loop_item(item: Mapping) -> Any:
    return item.get(item.get("ansible_loop_var") or "item")


def _identity(item: Mapping) -> tuple[str | None, str | None, Mapping | None]:
    """(model name, image, plan entry) of a run result, from its loop item or its own fields."""
    entry = _loop_item(item)
    if isinstance(entry, Mapping):
        model = entry.get("model", entry) if "model" in entry else entry
        image = entry.get("image") if isinstance(entry.get("image"), str) else None
        name = _name_of(model)
        if name:
            return name, image, entry
    elif _name_of(entry):
        return _name_of(entry), None, None
    return _name_of(item.get("model")), item.get("image") if isinstance(item.get("image"), str) else None, None


def _plan_defaults(entry: Mapping | None) -> dict:
    """Column values a plan entry {model, image, build} knows, for rows that leave them empty."""
    if not isinstance(entry, Mapping):
        return {}
    model = entry.get("model") if isinstance(entry.get("model"), Mapping) else {}
    build = entry.get("build") if isinstance(entry.get("build"), Mapping) else {}
    values = {k: model.get(k) for k in _PLAN_MODEL_FIELDS if model.get(k) not in (None, "")}
    values.update({col: build.get(key) for col, key in _PLAN_BUILD_FIELDS
                   if build.get(key) not in (None, "")})
    if "docker_image" not in values and isinstance(entry.get("image"), str):
        values["docker_image"] = entry["image"]
    return values


def _is_host_map(value: Mapping) -> bool:
    if not value or any(k in value for k in ("model", "records", "results", "builds", "status")):
        return False
    return all(isinstance(v, (list, tuple, Mapping)) or v is None for v in value.values())


class _Gatherer:
    def __init__(self, defaults: Mapping[str, Any]):
        self.defaults = dict(defaults)
        self.out = Gathered()
        self.hosts: list[str] = []
        self.failure_fields: dict[tuple, dict] = {}  # model columns a failed build record carries

    def _add(self, raw: Mapping, where: str, *, node: str, log_file: Any = None,
             run_model: str | None = None, run_image: str | None = None,
             extra_defaults: Mapping | None = None, origin: str = "run") -> None:
        raw = dict(raw)
        if node and not raw.get("machine_name"):
            raw["machine_name"] = node
        defaults = dict(extra_defaults or {})
        defaults.update((k, v) for k, v in self.defaults.items() if k not in defaults)
        row = normalize_row(raw, defaults=defaults, where=where)
        self.out.results.append(Result(
            row=row, node=node or str(row.get("machine_name") or ""),
            log_file=str(log_file) if log_file else None,
            run_model=run_model or row["model"], run_image=run_image or row.get("docker_image"),
            origin=origin))

    def walk(self, item: Any, where: str, host: str = "") -> None:
        if item is None:
            return
        if isinstance(item, (list, tuple)):
            for index, value in enumerate(item):
                self.walk(value, f"{where}[{index}]", host)
            return
        if not isinstance(item, Mapping):
            raise InvalidInputError(
                f"{where} is a {type(item).__name__}, not a run record", where="records",
                fix="Pass mad_run results, registered loops of them, perf rows, or a dict of those keyed by host")
        if "records" in item:
            self._run_result(item, where, host)
        elif isinstance(item.get("results"), list) and "model" not in item:
            self.walk(item["results"], f"{where}.results", host)
        elif isinstance(item.get("model"), str):
            self._add(item, where, node=host, log_file=item.get("log_file"))
        elif item.get("failed") or item.get("skipped") or item.get("unreachable"):
            self._run_result(item, where, host)  # a task result that never produced records
        elif _is_host_map(item):
            for name, value in item.items():
                if str(name) not in self.hosts:
                    self.hosts.append(str(name))
                self.walk(value, f"{where}.{name}", str(name))
        else:
            raise InvalidInputError(
                f"{where} is neither a run result (with 'records') nor a perf row (with 'model'): "
                f"keys {sorted(map(str, item))[:12]}", where="records",
                fix="Pass mad_run results, registered loops of them, perf rows, or a dict of those keyed by host")

    def _run_result(self, item: Mapping, where: str, host: str) -> None:
        model, image, entry = _identity(item)
        plan_values = _plan_defaults(entry)
        node = host or str(item.get("host") or item.get("node") or "")
        rows = item.get("records") if isinstance(item.get("records"), list) else []
        status = str(item.get("status") or "").upper()
        failed = bool(item.get("failed") or item.get("unreachable"))
        reason = item.get("reason") or (item.get("msg") if failed else None)
        if item.get("unreachable"):
            reason = f"node unreachable: {reason}" if reason else "node unreachable"
        for index, record in enumerate(rows):
            if not isinstance(record, Mapping):
                raise InvalidInputError(f"{where}.records[{index}] is not a perf row (a dict)",
                                        where="records")
            raw = dict(record)
            if not raw.get("model") and model:
                raw["model"] = model
            if not raw.get("reason") and reason and str(raw.get("status", status)).upper() != "SUCCESS":
                raw["reason"] = reason
            if raw.get("test_duration") in (None, "") and item.get("test_duration") is not None:
                raw["test_duration"] = item["test_duration"]
            if not raw.get("status") and failed:
                raw["status"] = "FAILURE"
            self._add(raw, f"{where}.records[{index}]", node=node,
                      log_file=raw.get("log_file") or item.get("log_file"),
                      run_model=model, run_image=image, extra_defaults=plan_values)
        if rows:
            return
        if not model:
            if failed or status == "FAILURE":
                self.out.warnings.append(
                    f"{where}: a failed run without a model name was left out ({reason or 'no reason'})")
            return
        if item.get("skipped") and not status:
            status = "SKIPPED"
            reason = reason or f"the task was skipped ({item.get('false_condition') or 'a condition was false'})"
        if not status:
            # No rows and no status but a reason: a run that was only planned (check mode).
            status = "SKIPPED" if reason and not failed else "FAILURE"
        if status != "SUCCESS" and not reason:
            reason = "the run returned no result row"
        raw = {"model": model, "status": "FAILURE" if status == "SUCCESS" else status, "reason": reason,
               "test_duration": item.get("test_duration")}
        self._add(raw, where, node=node, log_file=item.get("log_file"), run_model=model,
                  run_image=image, extra_defaults=plan_values)

    def complete_plan(self, plan: Sequence[Mapping], node_failures: Mapping[str, Any]) -> None:
        hosts = list(self.hosts) + [str(h) for h in node_failures if str(h) not in self.hosts]
        for host in hosts:
            failure = str(node_failures.get(host) or "").strip()
            for index, entry in enumerate(plan):
                name = _name_of(entry.get("model")) if isinstance(entry, Mapping) else _name_of(entry)
                if not name:
                    raise InvalidInputError(f"plan[{index}] names no model", where="plan",
                                            fix="Pass the run plan as mad_discover returns it ({image, build, model})")
                image = entry.get("image") if isinstance(entry, Mapping) else None
                nodes = entry.get("nodes") if isinstance(entry, Mapping) else None
                if isinstance(nodes, (list, tuple)) and host not in [str(n) for n in nodes]:
                    continue  # planned for other nodes only (distribute, resume)
                if any(r.node == host and r.run_model == name
                       and (not image or not r.run_image or r.run_image == image)
                       for r in self.out.results):
                    continue
                reason = failure or f"no result came back from {host} for this model"
                self._add({"model": name, "status": "FAILURE", "reason": reason}, f"plan[{index}]",
                          node=host, run_model=name, run_image=image,
                          extra_defaults=_plan_defaults(entry if isinstance(entry, Mapping) else None),
                          origin="plan")

    def builds(self, value: Any, where: str, host: str = "") -> None:
        if value is None:
            return
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self.builds(item, f"{where}[{index}]", host)
            return
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{where} is a {type(value).__name__}, not a build record",
                                    where="build_records")
        if isinstance(value.get("builds"), list):
            self.builds(value["builds"], f"{where}.builds", host)
        elif isinstance(value.get("results"), list) and "model" not in value:
            self.builds(value["results"], f"{where}.results", host)
        elif isinstance(value.get("summary"), Mapping) and "built_images" in value:
            self.builds(value["summary"].get("failed_builds") or [], f"{where}.summary.failed_builds", host)
        elif "model" in value:
            status = str(value.get("status") or "").upper()
            if status == "FAILURE" or (not status and value.get("error")):
                self._build_failure(value, host)
        elif _is_host_map(value):
            for name, item in value.items():
                self.builds(item, f"{where}.{name}", str(name))
        else:
            raise InvalidInputError(f"{where} is not a build record (no 'model')", where="build_records",
                                    fix="Pass mad_build's builds, its result, the manifest, or {model, error} entries")

    def _build_failure(self, record: Mapping, host: str) -> None:
        model = _name_of(record.get("model"))
        if not model:
            return
        image = record.get("image") or record.get("docker_image")
        if any(f["model"] == model and f.get("image") == image for f in self.out.build_failures):
            return
        self.out.build_failures.append({
            "model": model, "image": image, "dockerfile": record.get("dockerfile"),
            "error": str(record.get("error") or record.get("push_error") or "unknown error"),
            "build_duration": record.get("build_duration"), "log_file": record.get("log_file"),
            "host": host or record.get("host") or ""})
        self.failure_fields[(model, image)] = {key: record[key] for key in _PLAN_MODEL_FIELDS
                                               if record.get(key) not in (None, "", [])}

    def build_failure_rows(self) -> None:
        for failure in self.out.build_failures:
            model = failure["model"]
            if any(r.run_model == model or r.row["model"] == model for r in self.out.results):
                continue
            raw = dict(self.failure_fields.get((model, failure.get("image"))) or {})
            raw.update({"model": model, "status": "FAILURE", "reason": f"build failed: {failure['error']}",
                        "docker_file": failure.get("dockerfile"), "docker_image": failure.get("image"),
                        "build_duration": failure.get("build_duration")})
            self._add(raw, "build_records", node=failure.get("host") or "", log_file=failure.get("log_file"),
                      run_model=model, origin="build")


def row_defaults(context: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> dict:
    """Values for columns a row leaves empty: context keys named like columns, then
    ``pipeline`` and ``BUILD_NUMBER`` from the environment (build_number defaults to 0)."""
    environ = os.environ if environ is None else environ
    values = {k: v for k, v in (context or {}).items() if k in PERF_COLUMNS and v not in (None, "")}
    values.setdefault("build_number", environ.get("BUILD_NUMBER") or "0")
    if environ.get("pipeline"):
        values.setdefault("pipeline", environ["pipeline"])
    return values


def gather(records: Any, *, build_records: Any = None, plan: Sequence[Mapping] | None = None,
           node_failures: Mapping[str, Any] | None = None,
           defaults: Mapping[str, Any] | None = None) -> Gathered:
    """Every result row of the run, from the records in any accepted shape (see module doc)."""
    gatherer = _Gatherer(row_defaults() if defaults is None else defaults)
    gatherer.walk(records, "records")
    if node_failures and not isinstance(node_failures, Mapping):
        raise InvalidInputError("node_failures must be a dict keyed by host", where="node_failures")
    if plan:
        gatherer.complete_plan(list(plan), node_failures or {})
    elif node_failures:
        for host, failure in node_failures.items():
            if str(failure or "").strip():
                gatherer.out.warnings.append(f"{host}: {failure} (no plan was given, so no rows)")
    gatherer.builds(build_records, "build_records")
    gatherer.build_failure_rows()
    return gatherer.out


# --------------------------------------------------------------------------- summary


def now_iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: Any, where: str = "started") -> float:
    """Epoch seconds from an epoch number or an ISO 8601 text (a 'Z' suffix is fine)."""
    number = to_float(value)
    if number is not None:
        return number
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise InvalidInputError(f"{where} {value!r} is not a time", where=where,
                                fix="Give epoch seconds or ISO 8601, e.g. 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def exit_code(results: Sequence[Result]) -> int:
    """0 all SUCCESS/SKIPPED, 3 a model run failed, 2 only builds failed (CLI contract)."""
    failed = [r for r in results if r.row.get("status") == "FAILURE"]
    if any(r.origin != "build" for r in failed):
        return EXIT_RUN
    return EXIT_BUILD if failed else EXIT_OK


def summarize(gathered: Gathered, *, started: float, finished: float,
              files: Mapping[str, Any] | None = None) -> dict:
    """The run summary: times, totals, one entry per result row, build failures."""
    entries = []
    for result in gathered.results:
        entry = {name: result.row.get(name) for name in SUMMARY_FIELDS}
        entry["node"] = result.node or result.row.get("machine_name") or ""
        entry["log_file"] = result.log_file
        entries.append(entry)
    statuses = [r.row.get("status") for r in gathered.results]
    return {
        "started": now_iso(started),
        "finished": now_iso(finished),
        "duration": round(max(0.0, finished - started), 3),
        "totals": {"models": len(entries), "success": statuses.count("SUCCESS"),
                   "failure": statuses.count("FAILURE"), "skipped": statuses.count("SKIPPED")},
        "models": entries,
        "build_failures": list(gathered.build_failures),
        "exit_code": exit_code(gathered.results),
        "files": dict(files or {}),
        "warnings": list(gathered.warnings),
    }


# --------------------------------------------------------------------------- collect


@dataclass
class Paths:
    output_dir: str
    perf_csv: str
    perf_entry: str
    summary: str
    history_db: str
    html_report: str | None = None

    @classmethod
    def resolve(cls, output_dir: str | None = None, *, perf_csv: str | None = None,
                perf_entry: str | None = None, summary: str | None = None,
                history_db: str | None = None, html_report: str | None = None) -> "Paths":
        base = os.path.abspath(os.path.expanduser(output_dir or "."))

        def at(value: str | None, default: str) -> str:
            return os.path.join(base, os.path.expanduser(value or default))  # absolute wins in join

        history = history_db if history_db and "://" in history_db else at(history_db, HISTORY_NAME)
        return cls(base, at(perf_csv, "perf.csv"), at(perf_entry, "perf_entry.json"),
                   at(summary, "run_summary.json"), history,
                   at(html_report, "") if html_report else None)


def ensure_writable_dirs(paths: Iterable[str], *, check_mode: bool) -> None:
    """Every file's folder exists (made when missing) and takes a new file; else InvalidInputError."""
    seen = set()
    for path in paths:
        folder = os.path.dirname(path)
        if folder in seen:
            continue
        seen.add(folder)
        if check_mode:
            probe = folder
            while not os.path.exists(probe) and os.path.dirname(probe) != probe:
                probe = os.path.dirname(probe)
            if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
                raise InvalidInputError(f"cannot write into {folder}", where="output_dir",
                                        fix="Choose a writable output directory (--output / madengine_output_dir)")
            continue
        try:
            os.makedirs(folder, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".madengine-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise InvalidInputError(
                f"cannot write into {folder}: {exc.strerror or exc}", where="output_dir",
                fix="Choose a writable output directory (--output / madengine_output_dir); nothing was written"
            ) from None


def collect(records: Any, paths: Paths, *, build_records: Any = None,
            plan: Sequence[Mapping] | None = None, node_failures: Mapping[str, Any] | None = None,
            context: Mapping[str, Any] | None = None, started: Any = None,
            check_mode: bool = False, html_renderer: Any = None) -> dict:
    """Gather the rows, append them to perf.csv and the history, write perf_entry.json and the summary.

    Returns ``{changed, rows, rows_appended, summary, exit_code, perf_csv, perf_entry_file,
    summary_file, history_db, html_report, warnings}``; ``changed`` is True when rows were
    (or, in check mode, would be) appended.
    """
    began = time.time()
    start = parse_time(started) if started not in (None, "") else began
    gathered = gather(records, build_records=build_records, plan=plan, node_failures=node_failures,
                      defaults=row_defaults(context))
    rows = [r.row for r in gathered.results]
    outputs = [paths.perf_csv, paths.perf_entry, paths.summary]
    if "://" not in paths.history_db:
        outputs.append(paths.history_db)
    ensure_writable_dirs(outputs + ([paths.html_report] if paths.html_report else []), check_mode=check_mode)
    for path in (paths.perf_entry, paths.summary):
        if os.path.isdir(path):
            raise InvalidInputError(f"{path} is a directory", where="perf_entry/summary_output",
                                    fix="Give a file path")
    warnings = list(gathered.warnings)
    perf = PerfCsv(paths.perf_csv)
    dropped: list[str] = []
    if check_mode:
        header = perf.peek_header()  # a foreign perf.csv fails here too
        if header and rows:
            dropped = render_rows(header, rows)[1]
        history = open_history(paths.history_db, check_mode=True,
                               seed_rows=read_rows(paths.perf_csv)[1] if rows else [])
        try:
            fill_relative_change(rows, history)
        finally:
            history.close()
    elif rows:
        perf.peek_header()  # refuse a foreign perf.csv before creating anything
        history = open_history(paths.history_db)
        try:
            with perf.locked() as csv_file:
                # One critical section: seed, read the history, insert, append, commit.
                history.begin()
                if history.needs_seed():
                    history.seed(csv_file.read_rows())
                fill_relative_change(rows, history)
                history.add(rows)
                dropped = csv_file.append(rows)
                history.commit()
        except BaseException:
            history.rollback()
            raise
        finally:
            history.close()
    if dropped:
        warnings.append(
            f"{paths.perf_csv} has no column for {', '.join(dropped)} and no 'extras' column: those "
            f"values are only in {paths.perf_entry} and the results history")
    html_changed = False
    if paths.html_report and html_renderer is not None:
        html_changed = html_renderer(paths.perf_csv, paths.html_report, check_mode=check_mode,
                                     pending=rows if check_mode else None)
    files = {"perf_csv": paths.perf_csv, "perf_entry": paths.perf_entry, "summary": paths.summary,
             "history_db": paths.history_db, "html_report": paths.html_report}
    gathered.warnings = warnings
    summary = summarize(gathered, started=start, finished=time.time(), files=files)
    if not check_mode:
        write_json(paths.perf_entry, rows)
        write_json(paths.summary, summary)
    return {
        "changed": bool(rows) or html_changed,
        "rows": rows,
        "rows_appended": 0 if check_mode else len(rows),
        "summary": summary,
        "exit_code": summary["exit_code"],
        "perf_csv": paths.perf_csv,
        "perf_entry_file": paths.perf_entry,
        "summary_file": paths.summary,
        "history_db": paths.history_db,
        "html_report": paths.html_report,
        "warnings": warnings,
    }

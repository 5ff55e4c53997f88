"""Several processes append to one perf.csv at once: one header, whole batches, nothing lost."""
from __future__ import annotations

import csv
import multiprocessing
import sqlite3

from ansible_collections.madengine.core.plugins.module_utils._perfcsv import PerfCsv, normalize_row
from ansible_collections.madengine.core.plugins.module_utils._summary import Paths, collect

WORKERS = 6
BATCHES = 15
ROWS_PER_BATCH = 3


def _batch(worker: int, batch: int) -> list[dict]:
    # Long reasons make each batch tens of KiB, far past any atomic-write size.
    return [normalize_row({"model": f"w{worker}_b{batch}_r{k}", "performance": worker + batch + k,
                           "metric": "fps", "status": "SUCCESS", "reason": "x" * 20000,
                           f"only_worker_{worker}": k})
            for k in range(ROWS_PER_BATCH)]


def _append_worker(path: str, worker: int, barrier) -> None:
    barrier.wait()
    for batch in range(BATCHES):
        with PerfCsv(path).locked() as handle:
            handle.append(_batch(worker, batch))


def _collect_worker(output_dir: str, worker: int, barrier) -> None:
    barrier.wait()
    for batch in range(BATCHES):
        records = [{"records": [{"model": "shared", "performance": 100 + worker, "metric": "fps",
                                 "status": "SUCCESS", "gpu_architecture": "gfx942"}],
                    "status": "SUCCESS", "log_file": f"/logs/{worker}-{batch}.log"}]
        collect(records, Paths.resolve(output_dir, summary=f"summary-{worker}.json",
                                       perf_entry=f"entry-{worker}.json"))


def _run(target, *args) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=target, args=(*args, worker, barrier)) for worker in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * WORKERS


def _table(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_concurrent_appenders_write_one_header_and_never_interleave_batches(tmp_path):
    path = tmp_path / "perf.csv"
    _run(_append_worker, str(path))

    table = _table(path)
    header, rows = table[0], table[1:]
    assert sum(1 for cells in table if cells and cells[0] == "model") == 1
    assert all(len(cells) == len(header) for cells in rows)
    assert len(rows) == WORKERS * BATCHES * ROWS_PER_BATCH
    assert len(path.read_text().splitlines()) == len(table)  # one physical line per row
    names = [cells[0] for cells in rows]
    assert len(set(names)) == len(names)
    for start in range(0, len(names), ROWS_PER_BATCH):  # each batch whole and in order
        prefix = names[start].rsplit("_r", 1)[0]
        assert names[start:start + ROWS_PER_BATCH] == [f"{prefix}_r{k}" for k in range(ROWS_PER_BATCH)]


def test_concurrent_collects_keep_perf_csv_and_the_history_in_step(tmp_path):
    _run(_collect_worker, str(tmp_path))

    table = _table(tmp_path / "perf.csv")
    header, rows = table[0], table[1:]
    assert sum(1 for cells in table if cells and cells[0] == "model") == 1
    assert len(rows) == WORKERS * BATCHES
    with sqlite3.connect(tmp_path / "madengine_history.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone()[0] == WORKERS * BATCHES
    # Every collect read the history under the lock: the very first row alone has no basis.
    change = header.index("relative_change")
    assert [cells[change] == "" for cells in rows].count(True) == 1

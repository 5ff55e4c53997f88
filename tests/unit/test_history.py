"""The results history and relative_change: the last 5 successes of the same series."""
from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._history import (
    SqliteHistory, fill_relative_change, open_history, relative_change)


def result(performance, model="m", metric="fps", arch="gfx942", status="SUCCESS"):
    return {"model": model, "metric": metric, "gpu_architecture": arch, "status": status,
            "performance": performance}


@pytest.fixture
def history(tmp_path):
    store = open_history(str(tmp_path / "history.db"))
    yield store
    store.close()


@pytest.mark.parametrize("value, past, expected", [
    (110.0, [100.0], 10.0),
    (90.0, [100.0, 100.0], -10.0),
    (100.0, [90.0, 110.0], 0.0),
    (1.0, [3.0], -66.67),
    (5.0, [], None),
    (None, [1.0], None),
    (5.0, [0.0], None),           # no basis to compare against
    (-5.0, [-10.0], 50.0),        # higher than history reads as positive
])
def test_relative_change_is_a_signed_percentage_against_the_mean(value, past, expected):
    assert relative_change(value, past) == expected


def test_relative_change_uses_the_mean_of_the_last_five_successes_only(history):
    history.add([result(p) for p in (1000, 1000, 10, 20, 30, 40, 50)])
    history.add([result(9999, status="FAILURE")])
    rows = [result(60.0)]
    fill_relative_change(rows, history)
    assert rows[0]["relative_change"] == 100.0  # mean(10..50) = 30; the two 1000s are older


def test_other_metrics_architectures_and_models_are_other_series(history):
    history.add([result(100, metric="ms"), result(100, arch="gfx90a"), result(100, model="other"),
                 result(50)])
    rows = [result(75.0)]
    fill_relative_change(rows, history)
    assert rows[0]["relative_change"] == 50.0


def test_a_series_without_history_gets_no_relative_change(history):
    rows = [result(75.0)]
    fill_relative_change(rows, history)
    assert rows[0]["relative_change"] is None


def test_failed_and_skipped_rows_get_no_relative_change(history):
    history.add([result(10)])
    rows = [result(None, status="FAILURE"), result(None, status="SKIPPED")]
    fill_relative_change(rows, history)
    assert [r.get("relative_change") for r in rows] == [None, None]


def test_results_of_one_run_compare_with_the_past_not_with_each_other(history):
    history.add([result(100)])
    rows = [result(110.0), result(120.0)]
    fill_relative_change(rows, history)
    assert [r["relative_change"] for r in rows] == [10.0, 20.0]


def test_the_history_file_is_in_wal_mode_and_keeps_whole_rows(tmp_path, history):
    history.add([{**result(1.5), "matrix_size": 128, "tags": "a,b"}])
    with sqlite3.connect(tmp_path / "history.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row_json = db.execute("SELECT row_json FROM results").fetchone()[0]
    assert '"matrix_size": 128' in row_json


def test_a_new_history_needs_seeding_once_and_keeps_only_successful_seed_rows(history):
    assert history.needs_seed()
    history.begin()
    kept = history.seed([result("10"), result("", status="FAILURE"), result("x"), result("20")])
    history.commit()
    assert kept == 2
    assert not history.needs_seed()
    assert history.recent("m", "fps", "gfx942") == [20.0, 10.0]


def test_a_rolled_back_seed_is_seeded_again_next_time(history):
    history.begin()
    history.seed([result(10)])
    history.rollback()
    assert history.needs_seed()


def test_check_mode_creates_no_file_and_uses_the_seed_rows_in_memory(tmp_path):
    location = tmp_path / "missing.db"
    store = open_history(str(location), check_mode=True, seed_rows=[result(100)])
    try:
        assert store.recent("m", "fps", "gfx942") == [100.0]
    finally:
        store.close()
    assert not location.exists()


def test_check_mode_reads_an_existing_history_without_leaving_files_behind(tmp_path):
    location = tmp_path / "history.db"
    store = open_history(str(location))
    store.begin()
    store.seed([result(40)])
    store.commit()
    store.close()
    before = sorted(os.listdir(tmp_path))
    reader = open_history(str(location), check_mode=True)
    try:
        assert reader.recent("m", "fps", "gfx942") == [40.0]
    finally:
        reader.close()
    assert sorted(os.listdir(tmp_path)) == before


def test_a_database_url_is_refused_until_a_backend_exists():
    with pytest.raises(InvalidInputError, match="'postgresql' is not supported yet"):
        open_history("postgresql://user@db/results")


def test_a_file_that_is_not_a_database_is_invalid_input(tmp_path):
    bogus = tmp_path / "history.db"
    bogus.write_text("not sqlite at all, just text that is long enough to be read as a header" * 10)
    with pytest.raises(InvalidInputError, match="cannot be used"):
        SqliteHistory(str(bogus))

"""perf.csv: the column contract, the append-only policy for extra columns, bad files."""
from __future__ import annotations

import csv
import json

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import (
    KNOWN_EXTRAS, OVERFLOW_COLUMN, PERF_COLUMNS, PerfCsv, header_for, normalize_row, read_rows,
    render_rows)

MAD_FORMAT_COLUMNS = (
    "model,n_gpus,nnodes,gpus_per_node,training_precision,pipeline,args,tags,docker_file,"
    "base_docker,docker_sha,docker_image,git_commit,machine_name,deployment_type,launcher,"
    "gpu_architecture,performance,metric,relative_change,status,build_duration,test_duration,"
    "dataname,data_provider_type,data_size,data_download_duration,build_number,"
    "additional_docker_run_options").split(",")


def row(model="dummy", performance=12.5, **extra):
    data = {"model": model, "performance": performance, "metric": "samples_per_second",
            "status": "SUCCESS", "gpu_architecture": "gfx942"}
    data.update(extra)
    return normalize_row(data)


def append(path, rows):
    with PerfCsv(str(path)).locked() as handle:
        return handle.append(rows)


def lines(path):
    return path.read_text().splitlines()


def parsed(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_the_columns_are_the_29_of_the_mad_format_in_order():
    assert list(PERF_COLUMNS) == MAD_FORMAT_COLUMNS


def test_a_new_perf_csv_has_the_29_columns_then_reason_image_digest_batch_extras_and_extras(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row(), row("dummy_b", batch_size=64)])
    header = parsed(path)[0]
    assert header[:29] == MAD_FORMAT_COLUMNS
    assert header[29:] == [*KNOWN_EXTRAS, "batch_size", OVERFLOW_COLUMN]
    assert all(len(cells) == len(header) for cells in parsed(path))


def test_values_land_under_their_own_columns_and_tags_are_joined(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row(tags=["pyt", "nightly"], n_gpus="8", reason="")])
    names, rows = read_rows(str(path))
    assert rows[0]["model"] == "dummy"
    assert rows[0]["tags"] == "pyt,nightly"
    assert rows[0]["performance"] == "12.5"
    assert rows[0]["metric"] == "samples_per_second"
    assert rows[0]["n_gpus"] == "8"
    assert rows[0]["relative_change"] == ""


def test_a_second_append_keeps_every_existing_byte_and_writes_no_second_header(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row("first")])
    before = path.read_bytes()
    append(path, [row("second"), row("third")])
    after = path.read_bytes()
    assert after.startswith(before)
    assert [l.split(",")[0] for l in lines(path)] == ["model", "first", "second", "third"]


def test_an_extra_column_the_header_lacks_goes_into_the_extras_cell_as_json(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row("plain")])
    dropped = append(path, [row("sweep_128", matrix_size=128, note="warm")])
    assert dropped == []
    names, rows = read_rows(str(path))
    assert "matrix_size" not in names
    assert json.loads(rows[1][OVERFLOW_COLUMN]) == {"matrix_size": 128, "note": "warm"}
    assert len(set(map(len, parsed(path)))) == 1  # still rectangular


def test_rows_follow_an_existing_header_order_and_unknown_columns_without_extras_are_reported(tmp_path):
    # An upstream-written perf.csv: its own column order, no reason/image_digest/extras.
    upstream = ["model", "performance", "metric", "status", "machine_name", "custom"]
    path = tmp_path / "perf.csv"
    path.write_text(",".join(upstream) + "\nold,1.0,fps,SUCCESS,n0,x\n")
    dropped = append(path, [row("new", machine_name="n1", custom="y", image_digest="sha256:ab")])
    assert dropped == ["gpu_architecture", "image_digest"]
    assert lines(path)[-1] == "new,12.5,samples_per_second,SUCCESS,n1,y"


def test_a_header_with_spaces_around_names_is_read_like_upstream_reads_it(tmp_path):
    path = tmp_path / "perf.csv"
    path.write_text("model, performance, metric, status\n")
    append(path, [row("spaced")])
    assert lines(path)[-1] == "spaced,12.5,samples_per_second,SUCCESS"


@pytest.mark.parametrize("content, problem", [
    ("name,value\nx,1\n", "lacks the column(s) model, performance, metric, status"),
    ("model,performance,metric\nx,1,fps\n", "lacks the column(s) status"),
    ("model,performance,metric,status,model\n", "repeats the column(s) model"),
    ("\n\nmodel,performance,metric,status\n", "starts with an empty line"),
])
def test_a_file_that_is_not_a_madengine_perf_csv_is_refused_and_left_untouched(tmp_path, content, problem):
    path = tmp_path / "perf.csv"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match="not a madengine perf.csv") as info:
        append(path, [row()])
    assert problem in info.value.message
    assert path.read_text() == content


def test_binary_garbage_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "perf.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        append(path, [row()])


def test_a_file_without_a_final_newline_gets_one_before_the_new_rows(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row("first")])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    append(path, [row("second")])
    assert [l.split(",")[0] for l in lines(path)] == ["model", "first", "second"]


def test_an_empty_existing_file_gets_the_header(tmp_path):
    path = tmp_path / "perf.csv"
    path.write_text("")
    append(path, [row()])
    assert parsed(path)[0][:29] == MAD_FORMAT_COLUMNS


def test_newlines_inside_values_keep_each_row_on_one_line(tmp_path):
    path = tmp_path / "perf.csv"
    append(path, [row(status="FAILURE", performance=None, reason="Traceback (most recent call last):\n  boom\n")])
    assert len(lines(path)) == 2
    assert read_rows(str(path))[1][0]["reason"] == "Traceback (most recent call last): | boom"


def test_a_directory_named_perf_csv_is_refused(tmp_path):
    (tmp_path / "perf.csv").mkdir()
    with pytest.raises(InvalidInputError, match="is a directory"):
        append(tmp_path / "perf.csv", [row()])


@pytest.mark.parametrize("given, status, reason", [
    ({"performance": "3.5"}, "SUCCESS", None),
    ({"performance": ""}, "FAILURE", "no performance value was reported"),
    ({"performance": "N/A", "status": "SUCCESS"}, "FAILURE", "performance 'N/A' is not a number"),
    ({"performance": None, "status": "skipped", "reason": "gfx90a skipped"}, "SKIPPED", "gfx90a skipped"),
    ({"performance": "nan"}, "FAILURE", "performance 'nan' is not a number"),
])
def test_status_follows_the_mad_format_success_needs_a_performance(given, status, reason):
    result = normalize_row({"model": "m", "metric": "fps", **given})
    assert result["status"] == status
    assert result.get("reason") == reason


def test_an_unknown_status_is_invalid_input_naming_the_model():
    with pytest.raises(InvalidInputError, match="model m: status 'DONE'"):
        normalize_row({"model": "m", "status": "DONE", "performance": 1})


def test_a_row_without_a_model_is_invalid_input():
    with pytest.raises(InvalidInputError, match="no model name"):
        normalize_row({"performance": 1, "status": "SUCCESS"})


def test_normalized_rows_have_every_column_in_order_then_extras_and_no_log_file():
    result = normalize_row({"matrix_size": 64, "model": "m", "performance": 1, "log_file": "/x.log"},
                           defaults={"build_number": "0", "pipeline": "nightly"})
    assert list(result)[:29] == MAD_FORMAT_COLUMNS
    assert list(result)[29:] == ["matrix_size"]
    assert result["build_number"] == "0" and result["pipeline"] == "nightly"


def test_defaults_never_override_values_the_row_has():
    result = normalize_row({"model": "m", "performance": 1, "build_number": "17"},
                           defaults={"build_number": "0"})
    assert result["build_number"] == "17"


def test_render_rows_puts_known_header_columns_first_and_leaves_missing_cells_empty():
    header = header_for([row()])
    text, dropped = render_rows(header, [{"model": "only"}])
    assert dropped == []
    assert text == "only" + "," * (len(header) - 1) + "\n"

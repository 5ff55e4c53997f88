"""The performance line, multiple_results CSVs, error signatures and the status rules."""
from __future__ import annotations

import re

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._perf import (
    DEFAULT_ERROR_PATTERNS, PERF_REGEX, ErrorScan, LogScanner, error_scan_config,
    parse_multiple_results, parse_performance, perf_row, run_status, summarize_rows)
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import PERF_COLUMNS


def test_the_regex_is_the_one_of_mad_format():
    assert PERF_REGEX == (r"performance:\s+([+\-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+\-]?[0-9]+)?)"
                          r"(?:,?\s*/[a-zA-Z]+\s*,?|,)?\s+([^\s,]+)")


@pytest.mark.parametrize("line, expected", [
    ("performance: 123.4 samples_per_second", ("123.4", "samples_per_second")),
    ("performance:   42 tokens/s", ("42", "tokens/s")),
    ("performance: -1.5e3 ms", ("-1.5e3", "ms")),
    ("performance: .5 it_per_s", (".5", "it_per_s")),
    ("performance: 7, images_per_second", ("7", "images_per_second")),
    ("performance: 12.0 /s , fps", ("12.0", "fps")),
    ("[rank0] performance: 3 x, more text", ("3", "x")),
    ("performance: 88\nsamples", ("88", "samples")),
])
def test_performance_line_gives_value_and_metric(line, expected):
    assert parse_performance(line) == expected


@pytest.mark.parametrize("line", ["performance: fast", "performance:12 x", "perf: 1 x", ""])
def test_text_without_a_performance_line_gives_none(line):
    assert parse_performance(line) is None


def test_the_first_performance_line_wins():
    assert parse_performance("performance: 1 a\nperformance: 2 b\n") == ("1", "a")


def _scan(chunks, errors=None):
    scanner = LogScanner(errors=errors or ErrorScan())
    for chunk in chunks:
        scanner.feed(chunk)
    scanner.finish()
    return scanner


def test_scanner_finds_a_performance_line_split_across_chunks():
    scanner = _scan([b"noise\nperf", b"ormance: 12", b".5 samples_", b"per_second\nmore\n"])
    assert (scanner.performance, scanner.metric) == ("12.5", "samples_per_second")


@pytest.mark.parametrize("chunks", [
    [b"performance: 9\n", b"tokens\n"],
    [b"performance: 9\n", b"y" * (2 << 20) + b"\nnever\n"],  # a block boundary in between
    [b"a" * (2 << 20) + b"\nperformance:", b" 3\n\n", b"  fps\n"],
])
def test_scanner_agrees_with_the_regex_over_the_whole_log(chunks):
    scanner = _scan(chunks)
    assert (scanner.performance, scanner.metric) == parse_performance(b"".join(chunks).decode())


def test_scanner_reads_a_huge_line_without_a_newline():
    scanner = _scan([b"a" * (3 << 20), b" performance: 5 x"])
    assert (scanner.performance, scanner.metric) == ("5", "x")


def test_scanner_handles_utf8_split_between_chunks():
    text = "é performance: 1 µs\n".encode()
    scanner = _scan([text[:1], text[1:]])
    assert (scanner.performance, scanner.metric) == ("1", "µs")


def test_scanner_reports_the_first_error_signature_and_its_line():
    scanner = _scan([b"ok\nTraceback (most recent call last):\n  File x\n", b"CUDA out of memory\n"])
    assert scanner.error_pattern == "Traceback (most recent call last)"
    assert scanner.error_line == "Traceback (most recent call last):"


def test_a_benign_pattern_on_the_same_line_hides_the_signature():
    errors = ErrorScan(benign=("expected in test",))
    scanner = _scan([b"RuntimeError: expected in test\nall fine\n"], errors)
    assert scanner.error_pattern is None
    scanner = _scan([b"RuntimeError: expected in test\nRuntimeError: real\n"], errors)
    assert scanner.error_line == "RuntimeError: real"


def test_the_scan_can_be_switched_off():
    scanner = _scan([b"Traceback (most recent call last):\n"], ErrorScan(enabled=False))
    assert scanner.error_pattern is None


def test_error_scan_config_context_wins_and_benign_patterns_add_up():
    scan = error_scan_config(
        {"log_error_patterns": ["BOOM"], "log_error_benign_patterns": ["ctx"],
         "log_error_pattern_scan": "false"},
        {"log_error_patterns": ["model"], "log_error_benign_patterns": ["mod"],
         "log_error_pattern_scan": True})
    assert (scan.enabled, scan.patterns, scan.benign) == (False, ("BOOM",), ("mod", "ctx"))
    assert error_scan_config({}, {}).patterns == DEFAULT_ERROR_PATTERNS


@pytest.mark.parametrize("context", [
    {"log_error_patterns": "Traceback"}, {"log_error_patterns": []},
    {"log_error_benign_patterns": [1]}, {"log_error_pattern_scan": "maybe"},
])
def test_error_scan_config_rejects_bad_values_naming_the_key(context):
    with pytest.raises(InvalidInputError, match=next(iter(context))):
        error_scan_config(context, {})


def test_multiple_results_rows_keep_extras_and_flag_missing_performance():
    rows = parse_multiple_results(" model , performance ,metric, batch\n"
                                  "a,1.5,tok/s,8\nb,,tok/s,16\nc,n/a,x,1\n\n", "perf.csv")
    assert [(r.suffix, r.performance, r.metric, r.extras) for r in rows] == [
        ("a", 1.5, "tok/s", {"batch": "8"}), ("b", None, "tok/s", {"batch": "16"}),
        ("c", None, "x", {"batch": "1"})]
    assert rows[0].problem is None
    assert "no performance for 'b'" in rows[1].problem
    assert "'n/a'" in rows[2].problem


@pytest.mark.parametrize("text, message", [
    ("", "is empty"), ("model,metric\na,x\n", "lacks the column(s) performance"),
    ("model,performance,metric\n", "has no result rows"),
])
def test_a_bad_multiple_results_file_is_named(text, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        parse_multiple_results(text, "out.csv")


@pytest.mark.parametrize("args, expected", [
    ((0, False, 60, True), ("SUCCESS", "")),
    ((0, True, 60, True), ("FAILURE", "timeout after 60 s")),
    ((137, True, 5, False), ("FAILURE", "timeout after 5 s")),
    ((2, False, 60, True), ("FAILURE", "exit code 2")),
    ((0, False, 60, False), ("FAILURE", "no performance in the log")),
    ((None, False, 60, True), ("FAILURE", "the container's exit status is unknown")),
])
def test_status_rules(args, expected):
    assert run_status(*args) == expected


def test_an_error_signature_fails_a_run_that_has_performance():
    status, reason = run_status(0, False, 60, True, "out of memory", "HIP out of memory")
    assert status == "FAILURE" and "out of memory" in reason and "HIP out of memory" in reason


def test_perf_row_has_every_perf_csv_column_in_order_then_extras():
    row = perf_row({"model": "m"}, status="SUCCESS", reason="", extra="1")
    assert list(row)[:len(PERF_COLUMNS)] == list(PERF_COLUMNS)
    assert list(row)[len(PERF_COLUMNS):] == ["reason", "extra"]


def test_model_status_is_success_only_when_every_row_is():
    ok = {"status": "SUCCESS", "reason": ""}
    bad = {"status": "FAILURE", "reason": "no performance for 'b'"}
    assert summarize_rows([ok, ok]) == ("SUCCESS", "")
    assert summarize_rows([ok, bad]) == ("FAILURE", "1 of 2 results failed: no performance for 'b'")
    assert summarize_rows([bad]) == ("FAILURE", "no performance for 'b'")

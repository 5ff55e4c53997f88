"""The perf_collect module's edge: documented options match its argument_spec; errors are one message."""
from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.madengine.core.plugins.modules import perf_collect


def test_examples_and_return_are_valid_yaml():
    assert yaml.safe_load(perf_collect.EXAMPLES)
    assert set(yaml.safe_load(perf_collect.RETURN)) >= {"rows", "summary", "exit_code", "summary_file"}


def _main(args: dict, capsys) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        perf_collect.main()
    return json.loads(capsys.readouterr().out)


def test_main_appends_and_returns_rows_summary_and_exit_code(tmp_path, capsys):
    result = _main({"records": [{"model": "m", "performance": 2, "metric": "fps"}],
                    "output_dir": str(tmp_path)}, capsys)
    assert result["changed"] is True
    assert result["rows"][0]["status"] == "SUCCESS"
    assert result["summary"]["totals"]["success"] == 1
    assert result["exit_code"] == 0
    assert result["perf_csv"] == str(tmp_path / "perf.csv")


def test_main_turns_bad_input_into_one_message_with_exit_code_4(tmp_path, capsys):
    result = _main({"records": [{"no_model": True}], "output_dir": str(tmp_path)}, capsys)
    assert result["failed"] is True
    assert result["exit_code"] == 4 and result["error_kind"] == "invalid_input"
    assert result["msg"].startswith("records[0] is neither a run result")
    assert "exception" not in result


def test_report_mode_defaults_the_page_beside_perf_csv(tmp_path, capsys):
    _main({"records": [{"model": "m", "performance": 2, "metric": "fps"}], "output_dir": str(tmp_path)}, capsys)
    result = _main({"mode": "report", "perf_csv": str(tmp_path / "perf.csv")}, capsys)
    assert result["html_report"] == str(tmp_path / "perf.html")
    assert (tmp_path / "perf.html").is_file()

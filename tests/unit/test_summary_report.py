"""The HTML report of a perf.csv."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._report import write_html_report
from ansible_collections.madengine.core.plugins.module_utils._summary import Paths, collect

ROW = {"model": "dummy", "performance": "42.0", "metric": "fps", "status": "SUCCESS",
       "gpu_architecture": "gfx942", "machine_name": "node1"}


@pytest.fixture
def perf_csv(tmp_path):
    paths = Paths.resolve(str(tmp_path))
    collect([ROW], paths)
    collect([{**ROW, "performance": "63.0"},
             {"model": "<script>alert(1)</script>", "status": "FAILURE", "reason": "exit 1 & more"}], paths)
    return tmp_path / "perf.csv"


def test_the_report_shows_totals_the_latest_result_of_each_model_and_every_row(perf_csv, tmp_path):
    html_path = tmp_path / "report.html"
    assert write_html_report(str(perf_csv), str(html_path)) is True
    page = html_path.read_text()
    assert '<span class="FAILURE">FAILURE: 1</span><span class="SUCCESS">SUCCESS: 2</span>' in page
    latest = page.split('id="latest"')[1].split("</table>")[0]
    assert latest.count("<tr>") == 3  # header + dummy (latest only) + the failed model
    assert ">63.0<" in latest and ">42.0<" not in latest
    assert '<td class="num up">50.0</td>' in latest
    everything = page.split('id="all"')[1]
    assert everything.count("<tr>") == 4


def test_values_are_escaped(perf_csv, tmp_path):
    html_path = tmp_path / "report.html"
    write_html_report(str(perf_csv), str(html_path))
    page = html_path.read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "exit 1 &amp; more" in page


def test_the_same_perf_csv_gives_the_same_page_so_a_second_report_is_no_change(perf_csv, tmp_path):
    html_path = tmp_path / "report.html"
    write_html_report(str(perf_csv), str(html_path))
    first = html_path.read_bytes()
    assert write_html_report(str(perf_csv), str(html_path)) is False
    assert html_path.read_bytes() == first


def test_check_mode_says_whether_the_page_would_change_and_writes_nothing(perf_csv, tmp_path):
    html_path = tmp_path / "report.html"
    assert write_html_report(str(perf_csv), str(html_path), check_mode=True) is True
    assert not html_path.exists()


def test_a_missing_perf_csv_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="no perf.csv at"):
        write_html_report(str(tmp_path / "perf.csv"), str(tmp_path / "r.html"))


def test_collect_renders_the_report_of_the_whole_file_after_appending(tmp_path):
    paths = Paths.resolve(str(tmp_path), html_report="report.html")
    collect([ROW], paths, html_renderer=write_html_report)
    result = collect([{**ROW, "model": "second"}], paths, html_renderer=write_html_report)
    assert result["html_report"] == str(tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert ">second<" in page and ">dummy<" in page

"""`madengine runner`'s report when the user's playbook calls no perf_collect: entries come
from the nodes' mad_run results through the collection's own summary code."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "driver"))

from madengine.commands.runner import NodeEvents, build_report  # noqa: E402 - the driver from this checkout
from madengine.runner import PlaybookResult  # noqa: E402


def _item(host: str, model: str, **res) -> dict:
    return {"event": "runner_item_on_failed" if res.get("failed") else "runner_item_on_ok",
            "event_data": {"host": host, "resolved_action": "madengine.core.mad_run",
                           "res": {"gpu_node_run": {"model": {"name": model}, "image": f"ci-{model}"},
                                   "ansible_loop_var": "gpu_node_run", **res}}}


def test_a_report_without_perf_collect_reads_the_nodes_run_results():
    events = NodeEvents(None)
    events(_item("gpu-1", "ok", status="SUCCESS", test_duration=2.5, log_file="/out/ok.log",
                 records=[{"model": "ok", "status": "SUCCESS", "performance": "4.5", "metric": "items/s"}]))
    events(_item("gpu-2", "ok", failed=True, msg="the engine did not answer"))
    report = build_report("ansible", PlaybookResult(rc=2, status="failed"), events, started=100.0, finished=110.0,
                          inventory=Path("hosts.yml"), playbook="site.yml", manifest_file=None, exit_code=3)
    by_node = {r["node_id"]: r for r in report["node_results"]}
    assert by_node["gpu-1"]["status"] == "SUCCESS"
    assert by_node["gpu-1"]["performance_metrics"] == {"performance": 4.5, "metric": "items/s"}
    assert (by_node["gpu-1"]["duration"], by_node["gpu-1"]["log_file"]) == (2.5, "/out/ok.log")
    assert (by_node["gpu-2"]["status"], by_node["gpu-2"]["error_message"]) == ("FAILURE", "the engine did not answer")
    assert (report["total_nodes"], report["successful_nodes"], report["failed_nodes"]) == (2, 1, 1)
    assert report["nodes"]["gpu-2"]["failed"] == 1

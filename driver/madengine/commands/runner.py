"""`madengine runner ssh|ansible`: the multi-node run under the seed's command names, with its report file.

Both run the collection's run workflow on an inventory's gpu_nodes (an Ansible inventory or a
MAD node file); `runner ansible --playbook P` runs the user's own playbook instead (one that
imports madengine.core.run or uses the gpu_node role). Each writes the seed's report
(`runner_report.json` for ssh, `ansible_results.json` for ansible): nodes total / successful /
failed, the executions, and the results per node.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from madengine import collection, console, options
from madengine.commands import _workflow
from madengine.commands.run import Mode, Resume, RunMode, node_vars, run_vars
from madengine.commands.run import Output, SummaryOutput, Timeout
from madengine.progress import WorkflowProgress
from madengine.runner import Event, PlaybookResult, run_playbook

runner_app = typer.Typer(
    name="runner", no_args_is_help=True,
    help="Run the multi-node workflow on an inventory's GPU nodes and write a report file "
         "(the seed's `runner ssh` / `runner ansible`).")

InventoryRequired = Annotated[Path, typer.Option(
    "--inventory", "-i", help="Ansible inventory (group gpu_nodes) or MAD node file.")]
ManifestFile = Annotated[Path, typer.Option(
    "--manifest-file", "-m", help="The build_manifest.json whose images run on the nodes.")]
OptionalManifest = Annotated[Optional[Path], typer.Option(
    "--manifest-file", "-m", help="The build_manifest.json whose images run on the nodes "
    "(default build_manifest.json; passed to --playbook as madengine_manifest_file).")]
Playbook = Annotated[Optional[Path], typer.Option(
    "--playbook", help="Run this playbook (one that imports madengine.core.run or uses the "
    "madengine.core.gpu_node role) instead of the collection's run workflow.")]


SshReport = Annotated[Path, typer.Option("--report-output", help="Where to write the report.")]
AnsibleReport = Annotated[Path, typer.Option("--report-output", help="Where to write the report.")]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class NodeEvents:
    """Per-host facts the report needs that PlaybookResult does not keep: mad_run results, the plan."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.runs: dict[str, list[dict]] = {}
        self.planned: list[str] = []

    def __call__(self, event: Event) -> None:
        data = event.get("event_data") or {}
        action = data.get("resolved_action") or data.get("task_action") or ""
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        kind = event.get("event")
        if action.endswith("mad_run") and kind in ("runner_item_on_ok", "runner_item_on_failed"):
            self.runs.setdefault(data.get("host") or "", []).append(res)
        elif action.endswith("mad_discover") and kind == "runner_on_ok" and isinstance(res.get("assignment"), dict):
            self.planned = [str(h) for h in res["assignment"]]
        if self.inner is not None:
            self.inner(event)


def _entries_from_runs(runs: dict[str, list[dict]], started: float, finished: float) -> list[dict]:
    """Run-summary entries from the nodes' mad_run results, for a playbook that calls no
    perf_collect: the collection's own summary code, so both reports read alike."""
    summary = collection.module_utils("_summary")
    return summary.summarize(summary.gather(runs, defaults={}), started=started, finished=finished)["models"]


def build_report(kind: str, result: PlaybookResult, events: NodeEvents, *, started: float, finished: float,
                 inventory: Path, playbook: str, manifest_file: Path | None, exit_code: int) -> dict:
    """The seed's runner report: nodes total/successful/failed, executions, per-node results."""
    collected = result.last("perf_collect") or {}
    summary = collected.get("summary") or {}
    entries = (summary["models"] if isinstance(summary.get("models"), list)
               else _entries_from_runs(events.runs, started, finished))
    unreachable = {p.host for p in result.unreachable if p.host}
    names = list(dict.fromkeys(events.planned + [str(e.get("node") or "") for e in entries] + list(events.runs)
                               + sorted(unreachable)))
    nodes: dict[str, dict] = {}
    for name in [n for n in names if n]:
        mine = [e for e in entries if e.get("node") == name]
        statuses = [str(e.get("status")) for e in mine]
        errors = sorted({p.msg for p in result.unreachable + result.failures if p.host == name and p.msg})
        lost = name in unreachable
        nodes[name] = {
            "status": "FAILURE" if lost or "FAILURE" in statuses else "SUCCESS",
            "unreachable": lost,
            "executions": len(mine), "successful": statuses.count("SUCCESS"),
            "failed": statuses.count("FAILURE"), "skipped": statuses.count("SKIPPED"),
            "errors": errors,
        }
    node_results = [{
        "node_id": e.get("node"), "model_tag": e.get("model"), "status": e.get("status"),
        "duration": e.get("test_duration") or 0.0,
        "performance_metrics": ({"performance": e.get("performance"), "metric": e.get("metric")}
                                if e.get("performance") not in (None, "") else {}),
        "error_message": e.get("reason") or None, "log_file": e.get("log_file"),
    } for e in entries]
    statuses = [r["status"] for r in node_results]
    return {
        "runner": kind,
        "inventory": str(inventory),
        "playbook": playbook,
        "manifest_file": str(manifest_file) if manifest_file else None,
        "started": _iso(started), "finished": _iso(finished),
        "total_duration": round(finished - started, 3),
        "total_nodes": len(nodes),
        "successful_nodes": sum(1 for n in nodes.values() if n["status"] == "SUCCESS"),
        "failed_nodes": sum(1 for n in nodes.values() if n["status"] != "SUCCESS"),
        "total_executions": len(node_results),
        "successful_executions": statuses.count("SUCCESS"),
        "failed_executions": statuses.count("FAILURE"),
        "skipped_executions": statuses.count("SKIPPED"),
        "nodes": nodes,
        "node_results": node_results,
        "perf_csv": collected.get("perf_csv"),
        "summary_file": collected.get("summary_file"),
        "exit_code": exit_code,
    }


def _execute(kind: str, playbook: str, extravars: dict, *, inventory: Path, manifest_file: Path | None,
             report_output: Path, json_output: bool, verbose: bool) -> None:
    progress = WorkflowProgress(f"runner {kind}", enabled=not json_output)
    events = NodeEvents(progress)
    started = time.time()
    with progress:
        result = run_playbook(playbook, extravars, inventory=inventory, observer=events, verbose=verbose)
    finished = time.time()
    code = _workflow.exit_code(result, verbose=verbose)
    report = build_report(kind, result, events, started=started, finished=finished, inventory=inventory,
                          playbook=playbook, manifest_file=manifest_file, exit_code=code)
    if code == console.EXIT_OK and report["failed_nodes"]:
        report["exit_code"] = code = console.EXIT_RUN
    report_output.parent.mkdir(parents=True, exist_ok=True)
    report_output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if json_output:
        console.print_json(report)
    else:
        rows = (result.last("perf_collect") or {}).get("rows") or []
        if rows:
            console.out.print(_workflow.results_table(rows))
        console.err.print(f"nodes: {report['successful_nodes']}/{report['total_nodes']} successful; "
                          f"report: {report_output}")
    _workflow.finish(code)


def register(app: typer.Typer) -> None:
    @runner_app.command("ssh")
    def ssh(
        inventory: InventoryRequired,
        manifest_file: ManifestFile = Path("build_manifest.json"),
        mode: Mode = RunMode.replicate,
        resume: Resume = False,
        tags: options.Tags = None,
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        timeout: Timeout = None,
        output: Output = Path("perf.csv"),
        summary_output: SummaryOutput = None,
        report_output: SshReport = Path("runner_report.json"),
        mad_dir: options.MadDir = Path("."),
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Run a build manifest's images on every GPU node of the inventory over SSH; write runner_report.json."""
        extravars = run_vars(mad_dir, tags, manifest_file, additional_context, additional_context_file,
                             output, timeout, summary_output)
        extravars.update(node_vars(mode, resume, inventory))
        _execute("ssh", "run.yml", extravars, inventory=inventory, manifest_file=manifest_file,
                 report_output=report_output, json_output=json_output, verbose=verbose)

    @runner_app.command("ansible")
    def ansible(
        inventory: InventoryRequired,
        playbook: Playbook = None,
        manifest_file: OptionalManifest = None,
        mode: Mode = RunMode.replicate,
        resume: Resume = False,
        tags: options.Tags = None,
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        timeout: Timeout = None,
        output: Output = Path("perf.csv"),
        summary_output: SummaryOutput = None,
        report_output: AnsibleReport = Path("ansible_results.json"),
        mad_dir: options.MadDir = Path("."),
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Run the multi-node workflow (or your --playbook) with Ansible on the inventory; write ansible_results.json."""
        manifest = manifest_file
        if manifest is None and (playbook is None or Path("build_manifest.json").is_file()):
            manifest = Path("build_manifest.json")
        if playbook is not None and not playbook.is_file():
            console.fail(f"the playbook {playbook} does not exist")
        # A playbook of the user's may need neither a manifest nor tags.
        extravars = run_vars(mad_dir, tags, manifest, additional_context, additional_context_file,
                             output, timeout, summary_output, required=playbook is None)
        extravars.update(node_vars(mode, resume, inventory))
        target = str(playbook.resolve()) if playbook is not None else "run.yml"
        _execute("ansible", target, extravars, inventory=inventory, manifest_file=manifest,
                 report_output=report_output, json_output=json_output, verbose=verbose)

    app.add_typer(runner_app, name="runner")

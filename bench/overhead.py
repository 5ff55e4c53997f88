"""What madengine adds on top of `docker run`: per run, and per extra model.

Makes a MAD package of 5 small CPU models (the example package's memory-copy benchmark with
a short setting; each has its own image, all FROM the local base image), builds it once
with ``madengine build`` (the cache is then warm), and prints side by side, for N = 1 and 5:

* raw    the same N images run one after another with plain ``docker run --rm`` (scripts
         mounted, the same command), the least any tool can do;
* mad    ``madengine run --manifest-file`` of the same N images;

and the marginal seconds per extra model (the growth of madengine's overhead from 1 to 5
models, per model). Then the wall time of a full ``madengine run --tags <one model>``
(discover + build + run, images unchanged). With --profile, where the seconds of a
manifest run of the 5 models go (ansible-runner start, each task, each model's run).
Goals: full run of one model <= 3 s; marginal overhead per model <= 0.5 s.
Exit code 1 when a goal is missed.

    python bench/overhead.py [--repeat 3] [--profile] [--base madengine/base:bookworm] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MODELS = 5
ARGS = "--megabytes 8 --repeat 1"


def make_package(root: Path, nonce: str, base: str) -> list:
    """Five models, one image each (a per-model label keeps the images apart)."""
    (root / "docker").mkdir(parents=True)
    shutil.copytree(EXAMPLES / "scripts" / "cpu_memcopy", root / "scripts" / "cpu_memcopy")
    entries = []
    for i in range(MODELS):
        (root / "docker" / f"ovh{i}.Dockerfile").write_text(
            f"ARG BASE_DOCKER={base}\nFROM ${{BASE_DOCKER}}\nLABEL org.madengine.bench=\"{nonce}-{i}\"\n")
        entries.append({"name": f"ovh{nonce}_{i}", "dockerfile": f"docker/ovh{i}", "n_gpus": "0",
                        "scripts": "scripts/cpu_memcopy/memcopy.py", "args": ARGS,
                        "tags": ["ovh"] + (["ovh_one"] if i == 0 else [])})
    (root / "models.json").write_text(json.dumps(entries, indent=1))
    return entries


CPU: dict = {}  # CPU seconds (user + sys) of the madengine process trees, per measurement


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def driver(*args: str, cwd: Path, key=None) -> float:
    """Wall seconds of one successful ``madengine`` command; its CPU seconds go to CPU[key]."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "driver"), os.environ.get("PYTHONPATH", "")) if p))
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "madengine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"madengine {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    if key is not None:
        CPU.setdefault(key, []).append(_children_cpu() - cpu)
    return seconds


def raw_docker(images: list, package: Path) -> float:
    """Seconds to run the images one after another with plain docker run, as madengine would."""
    start = time.perf_counter()
    for image in images:
        subprocess.run(["docker", "run", "--rm", "--network", "host", "--ipc", "host",
                        "-v", f"{package / 'scripts' / 'cpu_memcopy'}:/myworkspace/run_directory",
                        "-w", "/myworkspace/run_directory", image, "python3", "memcopy.py", *ARGS.split()],
                       check=True, capture_output=True)
    return time.perf_counter() - start


def profile(package: Path, work: Path, title: str, extravars: dict) -> None:
    """One run through the driver's own runner, timed event by event."""
    if str(REPO / "driver") not in sys.path:
        sys.path.insert(0, str(REPO / "driver"))
    start = time.perf_counter()
    from madengine import runner  # noqa: E402 - the driver from this checkout

    imported = time.perf_counter()
    marks, items = [], []

    def observe(event: dict) -> None:
        data = event.get("event_data") or {}
        if event.get("event") in ("playbook_on_start", "playbook_on_task_start", "playbook_on_stats"):
            marks.append((time.perf_counter(), event["event"], data.get("task", "")))
        elif event.get("event") == "runner_item_on_ok" and data.get("task") == "Run each model":
            items.append((time.perf_counter(), (data.get("res") or {}).get("test_duration")))

    out = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
    runner.run_playbook("run.yml", {"madengine_mad_dir": str(package), "madengine_output_dir": str(out),
                                    "madengine_perf_csv": str(out / "perf.csv"), **extravars}, observer=observe)
    end = time.perf_counter()
    print(f"\nwhere the seconds of {title} go (driver's runner, in process):")
    print(f"  {'import madengine.runner':60} {imported - start:6.2f} s")
    previous, label = imported, "ansible-runner and ansible-playbook start"
    for moment, kind, task in marks:
        print(f"  {label[:60]:60} {moment - previous:6.2f} s")
        previous = moment
        label = {"playbook_on_start": "playbook parse, first play",
                 "playbook_on_stats": "stats, ansible-playbook exit"}.get(kind, "task: " + task)
    print(f"  {label[:60]:60} {end - previous:6.2f} s")
    print(f"  {'total':60} {end - start:6.2f} s")
    task_start = next(m for m, kind, task in marks if task == "Run each model")
    print("  each model of 'Run each model': seconds of the item, of which in the container")
    for moment, in_container in items:
        print(f"    {moment - task_start:5.2f} s  ({in_container} s)")
        task_start = moment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is shown)")
    parser.add_argument("--base", default=os.environ.get("MADENGINE_TEST_BASE_IMAGE", "madengine/base:bookworm"))
    parser.add_argument("--profile", action="store_true", help="break a 5-model run down by task and model")
    parser.add_argument("--keep", type=Path, help="keep the package and outputs in this folder")
    opts = parser.parse_args()
    if subprocess.run(["docker", "image", "inspect", opts.base], capture_output=True).returncode != 0:
        sys.exit(f"the base image {opts.base} is missing: make it with `madengine base-image`")

    nonce = os.urandom(3).hex()
    if opts.keep:
        opts.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="madengine-bench-overhead-", dir=opts.keep))
    package = work / "MAD"
    make_package(package, nonce, opts.base)
    images = []
    try:
        build_s = driver("build", "--mad-dir", str(package), "--tags", "ovh", cwd=work)
        manifest = json.loads((work / "build_manifest.json").read_text())
        images = list(manifest["built_images"])
        print(f"package: {MODELS} models in {package} (first build {build_s:.1f} s); median of {opts.repeat} runs\n")

        # Interleaved (raw, madengine, for 1 then 5 models, repeated), so a load that drifts
        # on a shared machine weighs on both sides alike.
        samples: dict = {}
        for attempt in range(opts.repeat):
            for count, tag in ((1, "ovh_one"), (MODELS, "ovh")):
                samples.setdefault(("raw", count), []).append(raw_docker(images[:count], package))
                perf = work / f"perf_{count}_{attempt}.csv"
                samples.setdefault(("mad", count), []).append(driver(
                    "run", "--manifest-file", str(work / "build_manifest.json"), "--mad-dir", str(package),
                    "--tags", tag, "-o", str(perf), cwd=work, key=count))
                if len(perf.read_text().splitlines()) != count + 1:
                    sys.exit(f"madengine ran {len(perf.read_text().splitlines()) - 1} models, not {count}")
            samples.setdefault("full", []).append(driver(
                "run", "--mad-dir", str(package), "--tags", "ovh_one", "-o", str(work / "perf_full.csv"),
                "--manifest-output", str(work / "full_manifest.json"), cwd=work, key="full"))
        rows = [(count, statistics.median(samples[("raw", count)]), statistics.median(samples[("mad", count)]))
                for count in (1, MODELS)]
        full = statistics.median(samples["full"])

        print(f"{'N':>3} {'raw docker run':>15} {'madengine run':>14} {'overhead':>9} {'per model':>10}"
              f" {'madengine CPU':>14}")
        for count, raw, mad in rows:
            print(f"{count:>3} {raw:>13.2f} s {mad:>12.2f} s {mad - raw:>7.2f} s {(mad - raw) / count:>8.2f} s"
                  f" {statistics.median(CPU[count]):>12.2f} s")
        (n1, raw1, mad1), (n5, raw5, mad5) = rows
        marginal = ((mad5 - raw5) - (mad1 - raw1)) / (n5 - n1)
        raw_per_model = (raw5 - raw1) / (n5 - n1)
        mad_per_model = (mad5 - mad1) / (n5 - n1)
        print(f"\nper extra model: raw {raw_per_model:.2f} s, madengine {mad_per_model:.2f} s, "
              f"marginal overhead {marginal:.2f} s (goal <= 0.5 s)")
        print(f"madengine CPU per extra model: {(statistics.median(CPU[n5]) - statistics.median(CPU[n1])) / (n5 - n1):.2f} s"
              f" (a loaded machine stretches wall times; CPU seconds are what madengine itself spends)")
        print(f"full discover + build + run of one model, warm cache: {full:.2f} s, "
              f"CPU {statistics.median(CPU['full']):.2f} s (goal <= 3 s)")
        print(f"load average during the bench: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if opts.profile:
            profile(package, work, f"a {MODELS}-model manifest run",
                    {"madengine_manifest_file": str(work / "build_manifest.json"), "madengine_tags": ["ovh"]})
            profile(package, work, "a full run of one model (discover, build, run)",
                    {"madengine_tags": ["ovh_one"], "madengine_manifest_output": str(work / "full_manifest.json")})
        return 0 if marginal <= 0.5 and full <= 3.0 else 1
    finally:
        for image in images:
            subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

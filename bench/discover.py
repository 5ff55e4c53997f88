"""How long discovery takes on a large MAD package (5,000 models by default).

Writes a generated package (root models, directory models, dynamic models, shared
Dockerfiles with CONTEXT lines) to a temporary folder, then prints:
  - the time of discovery inside the module (the module_utils call mad_discover makes),
  - the time of the module's whole main() (adds Ansible's exit_json over a ~3 MB result),
  - the wall time of the whole `madengine discover --tags all --json` (ansible-runner,
    playbook, module, rendering).

    python bench/discover.py [--models 5000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKER_PREFIXES = 50
FLAVOURS = (("ubuntu", "amd", "AMD", "UBUNTU"), ("ubuntu", "nvidia", "NVIDIA", "UBUNTU"),
            ("centos", "amd", "AMD", "CENTOS"))

DYNAMIC_SOURCE = '''\
from madengine.utils.discover_models import CustomModel


class Tuned(CustomModel):
    def update_model(self):
        self.args = (self.args + " --tuned").strip()


def list_models():
    return [Tuned(name=f"gen{{i}}", dockerfile="../../docker/base{{i % {prefixes}}}", scripts="run.sh",
                  n_gpus="1", tags=["dynamic", f"family{{i % 10}}"], args=f"--seed {{i}}")
            for i in range({count})]
'''


def _entry(i: int, prefix: str, scripts: str) -> dict:
    return {"name": f"model{i}", "dockerfile": f"{prefix}base{i % DOCKER_PREFIXES}", "scripts": scripts,
            "n_gpus": str(1 + i % 8), "owner": "bench@example.com", "training_precision": "fp16",
            "tags": [f"family{i % 10}", "bench", f"size{i % 3}"], "args": f"--batch {2 ** (i % 8)}",
            "timeout": 3600}


def make_package(root: Path, models: int = 5000) -> Path:
    """40 % root models, 40 % in 20 directories, 20 % from 2 get_models_json.py files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docker").mkdir(exist_ok=True)
    for p in range(DOCKER_PREFIXES):
        for os_name, vendor, vendor_ctx, os_ctx in FLAVOURS:
            (root / "docker" / f"base{p}.{os_name}.{vendor}.Dockerfile").write_text(
                f"# CONTEXT {{'gpu_vendor': '{vendor_ctx}', 'guest_os': '{os_ctx}'}}\n"
                "ARG BASE_DOCKER=madengine/base:bookworm\nFROM $BASE_DOCKER\n")
    n_root, n_dirs = models * 2 // 5, models * 2 // 5
    n_dynamic = models - n_root - n_dirs
    (root / "models.json").write_text(json.dumps(
        [_entry(i, "docker/", "scripts/common/run.sh") for i in range(n_root)], indent=1))
    (root / "scripts" / "common").mkdir(parents=True, exist_ok=True)
    (root / "scripts" / "common" / "run.sh").write_text("#!/bin/bash\necho 'performance: 1 x'\n")
    per_dir = n_dirs // 20
    for d in range(20):
        folder = root / "scripts" / f"dir{d}"
        folder.mkdir(parents=True, exist_ok=True)
        count = per_dir if d < 19 else n_dirs - per_dir * 19
        (folder / "models.json").write_text(json.dumps(
            [_entry(i, "../../docker/", "run.sh") for i in range(count)], indent=1))
    for d in range(2):
        folder = root / "scripts" / f"dyn{d}"
        folder.mkdir(parents=True, exist_ok=True)
        count = n_dynamic // 2 if d == 0 else n_dynamic - n_dynamic // 2
        (folder / "get_models_json.py").write_text(DYNAMIC_SOURCE.format(prefixes=DOCKER_PREFIXES, count=count))
    return root


def time_module(package: Path, tags: list[str], context: str) -> tuple[float, int]:
    """Discovery as mad_discover runs it, in this process (best of 3)."""
    from madengine import collection  # noqa: F401 - the collection's import path

    sys.path.insert(0, str(collection.collections_path()))
    from ansible_collections.madengine.core.plugins.module_utils._discover import discover

    best, count = float("inf"), 0
    for _ in range(3):
        start = time.perf_counter()
        result = discover(str(package), tags, context)
        best = min(best, time.perf_counter() - start)
        count = len(result["models"])
    return best, count


def time_module_main(package: Path, tags: list[str], context: str) -> float:
    """The module's main() as Ansible runs it: discovery plus argument checks and exit_json."""
    import contextlib
    import io

    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.madengine.core.plugins.modules import mad_discover

    start = time.perf_counter()
    with patch_module_args({"mad_dir": str(package), "tags": tags, "additional_context": context}):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            mad_discover.main()
    return time.perf_counter() - start


def time_cli(package: Path, tags: list[str], context: str) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "driver"), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "madengine", "discover", "--mad-dir", str(package),
                           "--tags", ",".join(tags), "--additional-context", context, "--json"],
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"madengine discover failed (rc={done.returncode}): {done.stderr.strip()}")
    return wall, len(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="write the package here and keep it")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "driver"))
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="madengine-bench-"))
    try:
        package = make_package(workdir, args.models)
        tags, context = ["all"], '{"gpu_vendor": "AMD", "guest_os": "UBUNTU"}'
        seconds, count = time_module(package, tags, context)
        print(f"package: {args.models} models in {package}")
        print(f"discovery inside the module: {seconds:.3f} s ({count} models selected, best of 3)")
        print(f"module main() incl. Ansible's result handling: {time_module_main(package, tags, context):.3f} s")
        wall, listed = time_cli(package, tags, context)
        print(f"madengine discover --tags all --json: {wall:.3f} s wall ({listed} models listed)")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

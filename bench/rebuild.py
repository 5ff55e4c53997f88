"""How much an unchanged rebuild costs: a first build of a generated package, then an immediate second.

Writes a MAD package of 20 models (one Dockerfile each, FROM the local base image, with a
run-unique RUN step so no earlier layer cache helps the first build) to a temporary folder,
builds it twice with the code mad_build runs (module_utils ``build_images``), and prints
both times, their ratio and how many images the second build rebuilt.
Goal: second build <= 10 % of the first, zero rebuilt. Exit code 1 when the goal is missed.

    python bench/rebuild.py [--models 20] [--parallel 0] [--base madengine/base:bookworm] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _import_collection():
    """Make ``ansible_collections.madengine.core`` importable from this checkout."""
    try:
        import ansible_collections.madengine.core  # noqa: F401  (installed with pip)
        return
    except ImportError:
        pass
    top = Path(tempfile.mkdtemp(prefix="madengine-bench-colls-"))
    link = top / "ansible_collections" / "madengine" / "core"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(top))


def make_package(root: Path, models: int, base: str, nonce: str) -> list:
    """The package files and the model list (as mad_discover would return it)."""
    (root / "docker").mkdir(parents=True, exist_ok=True)
    (root / "scripts" / "bench").mkdir(parents=True, exist_ok=True)
    (root / "scripts" / "bench" / "run.sh").write_text("#!/bin/bash\necho 'performance: 1 ops'\n")
    entries = []
    for i in range(models):
        (root / "docker" / f"bench{i}.ubuntu.amd.Dockerfile").write_text(
            "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
            f"ARG BASE_DOCKER={base}\nFROM $BASE_DOCKER\n"
            "ARG MAD_SYSTEM_GPU_ARCHITECTURE=gfx942\n"
            f"RUN echo 'bench {nonce} model {i}' > /bench.txt && python3 -c 'import numpy' \n"
            f"COPY common.txt /common.txt\n")
        entries.append({"name": f"bench_{nonce}_{i}", "dockerfile": f"docker/bench{i}", "dockercontext": "docker",
                        "scripts": "scripts/bench/run.sh", "n_gpus": "1", "tags": ["bench"], "args": ""})
    (root / "docker" / "common.txt").write_text(f"shared context file {nonce}\n")
    (root / "models.json").write_text(json.dumps(entries, indent=1))
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=0, help="0 = one build per CPU")
    parser.add_argument("--base", default=os.environ.get("MADENGINE_TEST_BASE_IMAGE", "madengine/base:bookworm"))
    parser.add_argument("--keep", help="write the package here and keep it (and its images)")
    args = parser.parse_args()

    _import_collection()
    from ansible_collections.madengine.core.plugins.module_utils._build import build_images
    from ansible_collections.madengine.core.plugins.module_utils._engine import get_client

    client = get_client()
    if client.api.images(name=args.base) == []:
        print(f"base image {args.base} is missing: make it with playbooks/base_image.yml", file=sys.stderr)
        return 2
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="madengine-bench-rebuild-"))
    nonce = os.urandom(4).hex()
    models = make_package(root, args.models, args.base, nonce)
    context = {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "docker_build_arg": {}}
    outcomes = []
    try:
        for _ in range(2):
            started = time.monotonic()
            outcome = build_images(str(root), models, context, str(root / "logs"), parallel=args.parallel,
                                   client=client)
            outcomes.append((time.monotonic() - started, outcome))
            if outcome["error"] is not None:
                print(f"build failed: {outcome['error'].message}", file=sys.stderr)
                return 2
    finally:
        if not args.keep:
            ids = {r["image_id"] for _, o in outcomes for r in o["builds"] if r.get("image_id")}
            for image_id in ids:
                client.api.remove_image(image_id, force=True)
            shutil.rmtree(root, ignore_errors=True)
    (first, built), (second, rebuilt) = outcomes
    rebuilt_count = sum(1 for r in rebuilt["builds"] if not r["skipped_unchanged"])
    ratio = second / first
    print(f"models:          {args.models}")
    print(f"first build:     {first:.2f} s ({sum(1 for r in built['builds'] if not r['skipped_unchanged'])} built)")
    print(f"second build:    {second:.2f} s")
    print(f"ratio:           {ratio:.1%} (goal <= 10%)")
    print(f"rebuilt:         {rebuilt_count} (goal 0)")
    met = ratio <= 0.10 and rebuilt_count == 0
    print(f"goal met:        {'yes' if met else 'no'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

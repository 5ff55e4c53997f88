"""`madengine discover` end to end: the driver, ansible-runner, the playbook and the module, for real."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tests" / "fixtures" / "mad_package"


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


def madengine(*args: str, cwd: Path = PACKAGE, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "driver"), os.environ.get("PYTHONPATH", "")]),
               XDG_CACHE_HOME=str(cache), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "madengine", "discover", *args], cwd=cwd, env=env,
                          capture_output=True, check=False, text=True, timeout=180)


NOTATIONS = [  # each notation once; together they select distinct (model, args) pairs
    ("dummy", [("dummy", "")]),
    ("multi", [("dummy_multi", "--steps 2")]),
    ("dummy2/model2", [("dummy2/model2", "")]),
    ("dummy3/tuned", [("dummy3/model4_bs128", "--batch 128 --tuned"), ("dummy3/model4_bs256", "--batch 256 --tuned")]),
    ("dummy2/all:x", [("dummy2/model1", "--foo 1 --x"), ("dummy2/model2", " --x")]),
    ("dummy3:model4", [("dummy3/model4", "--tuned")]),
    ("cpu_only:batch_size=512:fast", [("cpu_only", " --batch_size 512 --fast")]),
    ("all:y=2", [(name, args + " --y 2") for name, args in [
        ("dummy", ""), ("dummy_multi", "--steps 2"), ("cpu_only", ""), ("nvidia_only", ""), ("no_dockerfile", ""),
        ("dummy2/model1", "--foo 1"), ("dummy2/model2", ""), ("dummy3/model3", "--mode static"),
        ("dummy3/model4_bs128", "--batch 128 --tuned"), ("dummy3/model4_bs256", "--batch 256 --tuned"),
        ("dummy3/model4", "--tuned")]]),
]


def test_every_notation_lists_the_right_models_and_args_as_json(cache_home):
    tags = [tag for tag, _pairs in NOTATIONS]
    done = madengine("--tags", ",".join(tags[:4]), "--tags", ",".join(tags[4:]), "--json",
                     "--additional-context", "{'gpu_vendor': 'AMD'}", cache=cache_home)
    assert done.returncode == 0, done.stderr
    models = json.loads(done.stdout)
    assert [(m["name"], m["args"]) for m in models] == [pair for _tag, pairs in NOTATIONS for pair in pairs]
    for model in models:
        assert {"name", "tags", "args", "n_gpus", "dockerfiles", "scripts"} <= set(model)


def test_all_models_with_the_table_and_dockerfile_problems_listed_below(cache_home):
    done = madengine("--tags", "all", "--additional-context", '{"gpu_vendor": "AMD", "debug": true}', cache=cache_home)
    assert done.returncode == 0, done.stderr
    assert "Selected models (11)" in done.stdout
    for header in ("name", "tags", "n_gpus", "Dockerfiles", "script"):
        assert header in done.stdout
    assert "dummy3/model4_bs256" in done.stdout
    assert "docker/cpu.Dockerfile" in done.stdout
    assert "nvidia_only: no Dockerfile of docker/nvonly.* fits the context" in done.stdout
    assert "no_dockerfile: no Dockerfile matches docker/missing.*" in done.stdout
    assert "warning: context key 'debug' is accepted for compatibility but not acted on yet" in done.stderr
    assert "get_models_json.py prints" not in done.stdout


def test_the_package_can_be_named_and_the_context_read_from_a_file(cache_home, tmp_path):
    context = tmp_path / "ctx.json"
    context.write_text('{"gpu_vendor": "NVIDIA", "guest_os": "UBUNTU"}')
    done = madengine("--mad-dir", str(PACKAGE), "--tags", "dummy2/model1", "--additional-context-file", str(context),
                     "--json", cwd=tmp_path, cache=cache_home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["dockerfiles"] == ["docker/dummy.ubuntu.nvidia.Dockerfile"]


def broken(tmp_path: Path, models: str | None = "[]", **scripts: str) -> Path:
    root = tmp_path / "pkg"
    root.mkdir()
    if models is not None:
        (root / "models.json").write_text(models)
    for directory, code in scripts.items():
        (root / "scripts" / directory).mkdir(parents=True)
        (root / "scripts" / directory / "get_models_json.py").write_text(code)
    return root


@pytest.mark.parametrize(("package", "args", "message"), [
    (lambda t: broken(t, None), [], "error: no models.json in {pkg}. A MAD package is a folder with models.json"),
    (lambda t: broken(t, '[{"name": "a"},\n {"name": }]'), [],
     "error: models.json is not valid JSON: Expecting value (in {pkg}/models.json, line 2, column 11)"),
    (lambda t: broken(t, '[{"tags": ["x"]}]'), [], "error: model entry #1 of models.json has no 'name'"),
    (lambda t: broken(t, "[]", d="import os\nraise RuntimeError('needs CLUSTER')\n"), [],
     "error: scripts/d/get_models_json.py: loading it failed: RuntimeError: needs CLUSTER (in "
     "{pkg}/scripts/d/get_models_json.py, line 2)"),
    (lambda t: broken(t, "[]", d="def list_models():\n    return None\n"), [],
     "error: scripts/d/get_models_json.py: list_models() returned NoneType, not a list of CustomModel"),
    (lambda t: PACKAGE, ["--tags", "dummy2/modle1"],
     "error: the tag 'dummy2/modle1' matches no model; closest model names and tags: dummy2/model1"),
    (lambda t: broken(t, "[]"), [], "error: the MAD package has no models, so nothing can be selected"),
    (lambda t: PACKAGE, ["--tags", "dummy", "-c", '{"docker_env_var": {}}'],
     "error: unknown context key 'docker_env_var': did you mean 'docker_env_vars'?"),
    (lambda t: PACKAGE, ["--tags", "dummy", "-f", "/nonexistent/ctx.json"],
     "error: the additional context file /nonexistent/ctx.json does not exist"),
], ids=["no-models-json", "malformed-json", "no-name", "code-raises", "wrong-return-type", "unknown-tag",
        "empty-selection", "unknown-context-key", "missing-context-file"])
def test_each_error_prints_one_clear_message_and_exits_4(cache_home, tmp_path, package, args, message):
    mad = package(tmp_path)
    done = madengine("--mad-dir", str(mad), *args, cwd=tmp_path, cache=cache_home)
    assert done.returncode == 4, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert message.format(pkg=mad) in lines[0]
    assert [line for line in lines if line.startswith("error:")] == [lines[0]]
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_an_upstream_package_discovers_unchanged_with_the_driver_installed(cache_home, tmp_path):
    """get_models_json.py importing madengine.utils.discover_models, with the driver on the path."""
    shutil.copytree(PACKAGE, tmp_path / "MAD")
    (tmp_path / "MAD" / "scripts" / "dummy3" / "get_models_json.py").write_text(
        "from madengine.utils.discover_models import CustomModel\n\n"
        "class Tuned(CustomModel):\n"
        "    def update_model(self):\n"
        "        assert type(self).__mro__[1].__module__.endswith('_custom_model'), type(self).__mro__\n"
        "        self.args = '--tuned'\n\n"
        "def list_models():\n"
        "    return [Tuned(name='m', dockerfile='../../docker/dummy', scripts='run.sh', tags=['t'])]\n")
    done = madengine("--tags", "dummy3/m", "--json", "-c", "{'gpu_vendor': 'AMD'}", cwd=tmp_path / "MAD",
                     cache=cache_home)
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)[0]
    assert (model["name"], model["args"], model["scripts"]) == ("dummy3/m", "--tuned", "scripts/dummy3/run.sh")
    assert model["dockerfiles"] == ["docker/dummy.ubuntu.amd.Dockerfile"]

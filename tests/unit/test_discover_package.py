"""Reading a MAD package: root, directory and dynamic models; every error is one clear message."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._custom_model import CustomModel
from ansible_collections.madengine.core.plugins.module_utils._discover import discover
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._package import load_package

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tests" / "fixtures" / "mad_package"


def make_package(root: Path, models=None, dirs: dict | None = None) -> Path:
    """A small package: ``models`` for models.json (text or list), ``dirs`` {name: {file: text|list}}."""
    root.mkdir(parents=True, exist_ok=True)
    if models is not None:
        (root / "models.json").write_text(models if isinstance(models, str) else json.dumps(models))
    for directory, files in (dirs or {}).items():
        folder = root / "scripts" / directory
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content)
            (folder / name).write_text(textwrap.dedent(text))
    return root


def error_of(mad_dir: Path, tags=("all",)) -> str:
    with pytest.raises(InvalidInputError) as err:
        discover(str(mad_dir), list(tags))
    assert err.value.exit_code == 4
    return err.value.message


def by_name(result: dict) -> dict:
    return {m["name"]: m for m in result["models"]}


# -- the fixture package, normalised -------------------------------------------------------

def test_root_models_keep_every_field_and_are_normalised():
    model = by_name(discover(str(PACKAGE), ["dummy_multi"]))["dummy_multi"]
    assert model["n_gpus"] == "-1"  # an integer in models.json becomes the contract's string
    assert model["report_group"] == "nightly"  # unknown fields travel on
    assert model["multiple_results"] == "perf_dummy.csv"
    assert model["timeout"] is None
    assert model["dockercontext"] == "docker"
    assert model["scripts"] == "scripts/dummy/run_multi.sh"


def test_paths_are_normalised_relative_to_the_package():
    model = by_name(discover(str(PACKAGE), ["cpu_only"]))["cpu_only"]
    assert (model["dockerfile"], model["dockercontext"]) == ("docker/cpu", "docker")
    assert model["tags"] == ["cpu", "quick"]  # a comma string, as upstream accepts
    assert model["n_gpus"] == "0"


def test_directory_models_are_named_by_directory_and_their_paths_resolved_from_it():
    model = by_name(discover(str(PACKAGE), ["dummy2/model2"]))["dummy2/model2"]
    assert model["scripts"] == "scripts/dummy2/run.sh"
    assert model["dockerfile"] == "docker/dummy"
    assert model["timeout"] == 1800  # "1800" in the file
    assert model["n_gpus"] == "2"


def test_dynamic_models_come_from_list_models_and_are_updated_on_selection():
    model = by_name(discover(str(PACKAGE), ["dummy3/model4_bs256"]))["dummy3/model4_bs256"]
    assert model["owner"] == "updated-by-update_model"
    assert model["args"] == "--batch 256 --tuned"
    assert model["scripts"] == "scripts/dummy3/run.sh"
    assert model["dockerfile"] == "docker/dummy"
    assert model["n_gpus"] == "-1"  # CustomModel's default, as upstream
    assert model["timeout"] == 7200


def test_dynamic_package_code_runs_from_the_package_folder_and_restores_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # get_models_json.py opens scripts/dummy3/configs/... relative to the package
    names = [m["name"] for m in discover(str(PACKAGE), ["dummy3/tuned"])["models"]]
    assert names == ["dummy3/model4_bs128", "dummy3/model4_bs256"]
    assert Path.cwd() == tmp_path


def test_package_code_output_goes_to_stderr_never_stdout(capfd):
    discover(str(PACKAGE), ["dummy3/all"])
    out, err = capfd.readouterr()
    assert out == ""
    assert "get_models_json.py prints while loading" in err


def test_the_mad_dir_defaults_to_the_working_directory(monkeypatch):
    monkeypatch.chdir(PACKAGE)
    result = discover(None, ["dummy"])
    assert result["mad_dir"] == str(PACKAGE)


# -- CustomModel and the upstream import ---------------------------------------------------

def test_custom_model_has_the_upstream_fields_defaults_and_hooks():
    assert [f.name for f in fields(CustomModel)] == [
        "name", "dockerfile", "dockercontext", "scripts", "url", "cred", "owner", "data", "n_gpus", "timeout",
        "training_precision", "tags", "args", "multiple_results", "skip_gpu_arch"]
    model = CustomModel(name="m", tags=["t"])
    assert model.update_model() is None
    assert model.to_dict()["n_gpus"] == "-1" and model.to_dict()["timeout"] == 7200
    assert CustomModel(name="a").tags is not CustomModel(name="b").tags


def collection_root() -> Path:
    """The folder above ``ansible_collections`` that conftest.py put on sys.path."""
    marker = Path("ansible_collections", "madengine", "core", "plugins", "module_utils", "_package.py")
    return next(Path(p) for p in sys.path if p and (Path(p) / marker).is_file())


def run_python(code: str, cwd: Path, driver: bool) -> subprocess.CompletedProcess:
    """A fresh interpreter with the collection importable, and the driver only when asked.

    Without the driver: isolated (-I: no PYTHONPATH, no working directory) and without
    site-packages (-S), where an installed or editable madengine would be found; sys.path
    gets only the standard library and the collection.
    """
    if driver:
        paths = [str(REPO / "driver")] + [p for p in sys.path if p and Path(p) != REPO / "driver"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        argv = [sys.executable, "-c", code]
    else:
        env = {"PATH": os.environ["PATH"]}
        argv = [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(collection_root())!r})\n{code}"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd, check=False)


def test_without_the_driver_the_upstream_import_exists_only_while_package_code_runs(tmp_path):
    probe = (
        "import importlib.util\n"
        "from ansible_collections.madengine.core.plugins.module_utils._discover import discover\n"
        "assert importlib.util.find_spec('madengine') is None, importlib.util.find_spec('madengine')\n"
        f"r = discover({str(PACKAGE)!r}, ['dummy3/model4'])\n"
        "assert not [k for k in sys.modules if k.split('.')[0] == 'madengine'], sorted(sys.modules)\n"
        "print(r['models'][0]['args'])\n")
    done = run_python(probe, tmp_path, driver=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "--tuned"


def test_the_installed_driver_reexports_the_very_same_class(tmp_path):
    """With the driver importable, get_models_json.py gets the driver's module, and its class is ours."""
    probe = (
        "import sys\n"
        "from madengine.utils.discover_models import CustomModel as Driver\n"
        "from ansible_collections.madengine.core.plugins.module_utils._custom_model import CustomModel\n"
        "from ansible_collections.madengine.core.plugins.module_utils._discover import discover\n"
        f"r = discover({str(PACKAGE)!r}, ['dummy3/model4'])\n"
        "assert Driver is CustomModel, (Driver, CustomModel)\n"
        "assert sys.modules['madengine.utils.discover_models'].__file__.endswith('discover_models.py')\n"
        "print(r['models'][0]['args'])\n")
    done = run_python(probe, tmp_path, driver=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "--tuned"


def test_the_driver_module_finds_the_collection_from_a_source_tree(tmp_path):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "driver"), "XDG_CACHE_HOME": str(tmp_path)}
    # -S: no site-packages, where an installed madengine would bring the collection along.
    done = subprocess.run(
        [sys.executable, "-S", "-c", "from madengine.utils.discover_models import CustomModel; "
         "print(CustomModel.__module__)"], env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ansible_collections.madengine.core.plugins.module_utils._custom_model"


def test_objects_of_another_custommodel_class_are_accepted_by_their_to_dict(tmp_path):
    mad = make_package(tmp_path / "pkg", [], {"other": {"get_models_json.py": """
        from dataclasses import dataclass, asdict, field

        @dataclass
        class Model:
            name: str
            scripts: str = "run.sh"
            tags: list = field(default_factory=list)
            def to_dict(self):
                return asdict(self)

        def list_models():
            return [Model(name="x", tags=["t"])]
        """}})
    model = discover(str(mad), ["other/t"])["models"][0]
    assert (model["name"], model["scripts"], model["n_gpus"]) == ("other/x", "scripts/other/run.sh", "1")


# -- errors: one message each, exit code 4 -------------------------------------------------

def test_no_models_json_says_where_it_looked_and_what_a_package_is(tmp_path):
    message = error_of(tmp_path)
    assert f"no models.json in {tmp_path}" in message
    assert "A MAD package is a folder with models.json" in message


def test_a_missing_package_folder_is_named(tmp_path):
    assert f"the MAD package folder {tmp_path / 'nope'} does not exist" in error_of(tmp_path / "nope")


def test_malformed_json_gives_file_line_and_column(tmp_path):
    mad = make_package(tmp_path, '[\n  {"name": "a",\n   "tags": [}\n]')
    message = error_of(mad)
    assert "models.json is not valid JSON" in message
    assert f"{mad / 'models.json'}, line 3, column 13" in message


def test_malformed_directory_json_names_the_directory_file(tmp_path):
    mad = make_package(tmp_path, [], {"d": {"models.json": "[{]"}})
    assert f"{mad / 'scripts' / 'd' / 'models.json'}, line 1, column 3" in error_of(mad)


def test_models_json_must_be_a_list(tmp_path):
    assert "models.json must be a JSON list of model entries, not a JSON dict" in error_of(
        make_package(tmp_path, {"name": "a"}))


def test_a_model_without_name_is_an_error_naming_its_position(tmp_path):
    mad = make_package(tmp_path, [{"name": "a"}, {"scripts": "run.sh"}])
    assert "model entry #2 of models.json has no 'name'" in error_of(mad)


def test_a_directory_model_without_name_names_its_file(tmp_path):
    mad = make_package(tmp_path, [], {"d": {"models.json": [{"name": ""}]}})
    assert "model entry #1 of scripts/d/models.json has a 'name' that is not a text" in error_of(mad)


def test_a_model_entry_that_is_not_an_object_is_an_error(tmp_path):
    assert "model entry #1 of models.json is not a JSON object" in error_of(make_package(tmp_path, ["a"]))


def test_both_models_json_and_get_models_json_in_one_directory_is_an_error(tmp_path):
    mad = make_package(tmp_path, [], {"d": {"models.json": [], "get_models_json.py": "def list_models(): return []"}})
    assert "scripts/d has both models.json and get_models_json.py" in error_of(mad)


@pytest.mark.parametrize(("code", "expected"), [
    ("raise ValueError('no cluster config')\n",
     "scripts/d/get_models_json.py: loading it failed: ValueError: no cluster config"),
    ("def list_models():\n    return {}['missing']\n",
     "scripts/d/get_models_json.py: list_models() failed: KeyError: 'missing'"),
    ("def list_models(:\n", "scripts/d/get_models_json.py: loading it failed: SyntaxError"),
    ("import sys\nsys.exit(3)\n", "loading it failed: SystemExit: 3"),
    ("import no_such_module_anywhere\n", "ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    ("MODELS = []\n", "scripts/d/get_models_json.py defines no list_models() function"),
    ("def list_models():\n    return 'model1'\n", "list_models() returned str, not a list of CustomModel"),
    ("def list_models():\n    return [{'name': 'a'}]\n", "list_models() item #1 is dict, not a CustomModel"),
])
def test_failing_package_code_is_reported_with_its_file_and_error(tmp_path, code, expected):
    mad = make_package(tmp_path, [], {"d": {"get_models_json.py": code}})
    message = error_of(mad)
    assert expected in message
    assert "Traceback" not in message


def test_the_failing_line_of_package_code_is_named(tmp_path):
    code = "def list_models():\n    x = 1\n    raise RuntimeError('boom')\n"
    mad = make_package(tmp_path, [], {"d": {"get_models_json.py": code}})
    assert f"{mad / 'scripts' / 'd' / 'get_models_json.py'}, line 3" in error_of(mad)


def test_update_model_failing_is_reported_only_when_the_model_is_selected(tmp_path):
    code = """
        from madengine.utils.discover_models import CustomModel

        class Broken(CustomModel):
            def update_model(self):
                raise OSError("config server unreachable")

        def list_models():
            return [CustomModel(name="fine", tags=["ok"]), Broken(name="broken")]
        """
    mad = make_package(tmp_path, [], {"d": {"get_models_json.py": code}})
    assert [m["name"] for m in discover(str(mad), ["ok"])["models"]] == ["d/fine"]
    assert "update_model() of 'd/broken' failed: OSError: config server unreachable" in error_of(mad, ["d/broken"])


def test_an_empty_package_is_an_error_never_an_empty_success(tmp_path):
    assert "the MAD package has no models" in error_of(make_package(tmp_path, []))


@pytest.mark.parametrize(("entry", "expected"), [
    ({"name": "m", "n_gpus": "many"}, "model 'm' has 'n_gpus' 'many', which is not a GPU count"),
    ({"name": "m", "timeout": "soon"}, "model 'm' has 'timeout' 'soon', which is not a number of seconds"),
    ({"name": "m", "args": ["--a"]}, "model 'm' has 'args' ['--a'], which is not a string of arguments"),
    ({"name": "m", "tags": [1]}, "model 'm' has 'tags' that are not a list of strings"),
    ({"name": "m", "scripts": 3}, "model 'm' has 'scripts' 3, which is not a path"),
])
def test_a_field_of_the_wrong_type_names_the_model_and_field(tmp_path, entry, expected):
    assert expected in error_of(make_package(tmp_path, [entry]))


def test_repeated_model_names_are_a_warning(tmp_path):
    mad = make_package(tmp_path, [{"name": "m"}], {"d": {"models.json": [{"name": "x"}]}})
    (mad / "models.json").write_text(json.dumps([{"name": "m"}, {"name": "m"}]))
    assert any("'m' appears more than once" in w for w in load_package(str(mad)).warnings)


@pytest.mark.parametrize(("context", "named"), [
    ({"pre_scripts": [{"path": "scripts/common/pre_scripts/absent.sh"}]}, "absent.sh"),
    ({"tools": [{"name": "no_such_tool"}]}, "needs scripts/common/tools.json"),
])
def test_a_missing_pre_script_or_tool_stops_discovery_before_any_build(context, named):
    with pytest.raises(InvalidInputError, match=named):
        discover(str(PACKAGE), ["dummy"], context)


def test_a_model_url_that_names_no_folder_stops_discovery(tmp_path):
    (tmp_path / "scripts" / "m").mkdir(parents=True)
    (tmp_path / "scripts" / "m" / "run.sh").write_text("echo hi\n")
    (tmp_path / "models.json").write_text(json.dumps([{
        "name": "m", "dockerfile": "docker/m", "scripts": "scripts/m/run.sh", "n_gpus": "0", "tags": ["t"],
        "url": "https://example.com/my%20repo"}]))
    with pytest.raises(InvalidInputError, match="does not end in a usable folder name"):
        discover(str(tmp_path), ["m"])

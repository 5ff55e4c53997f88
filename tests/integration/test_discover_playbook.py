"""playbooks/discover.yml through real ansible-playbook, with extra-vars only (as AWX runs it)."""
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
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def playbook(extravars: dict, *, cwd: Path = REPO, check: bool = False) -> tuple[int, str, dict | None]:
    """(rc, output, the mad_discover result or None)."""
    env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="False", PWD=str(cwd))
    cmd = [ANSIBLE_PLAYBOOK, "-v", "-i", str(REPO / "inventories/local/hosts.yml"),
           str(REPO / "playbooks/discover.yml"), "-e", json.dumps(extravars)] + (["--check"] if check else [])
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False, text=True, timeout=120)
    output = done.stdout + done.stderr
    marker = "TASK [Select models and their Dockerfiles]"
    start = output.find("ok: [localhost] => ", output.find(marker))
    result = None
    if output.find(marker) >= 0 and start >= 0:
        result, _end = json.JSONDecoder().raw_decode(output[start + len("ok: [localhost] => "):])
    return done.returncode, output, result


def names_and_args(result: dict) -> list[tuple[str, str]]:
    return [(m["name"], m["args"]) for m in result["models"]]


@pytest.mark.parametrize(("tags", "expected"), [
    ("dummy", [("dummy", "")]),
    ("dummy2/group2", [("dummy2/model1", "--foo 1"), ("dummy2/model2", "")]),
    ("dummy3/all", [("dummy3/model3", "--mode static"), ("dummy3/model4_bs128", "--batch 128 --tuned"),
                    ("dummy3/model4_bs256", "--batch 256 --tuned"), ("dummy3/model4", "--tuned")]),
    ("dummy2:model2:bs=8:fast", [("dummy2/model2", " --bs 8 --fast")]),
    (["dummy2/model1", "quick:seed=1"], [("dummy2/model1", "--foo 1"), ("dummy", " --seed 1"),
                                         ("cpu_only", " --seed 1")]),
])
def test_each_notation_selects_models_and_args_through_ansible_playbook(tags, expected):
    rc, output, result = playbook({"madengine_mad_dir": str(PACKAGE), "madengine_tags": tags,
                                   "madengine_additional_context": {"gpu_vendor": "AMD"}})
    assert rc == 0, output
    assert names_and_args(result) == expected
    assert result["changed"] is False
    assert result["mad_dir"] == str(PACKAGE)


def test_the_playbook_shows_the_selection_and_the_dockerfile_problems():
    rc, output, _result = playbook({"madengine_mad_dir": str(PACKAGE), "madengine_tags": "dummy2/model1,nv",
                                    "madengine_additional_context": '{"gpu_vendor": "AMD"}'})
    assert rc == 0, output
    assert "dummy2/model1 [n_gpus 1] args='--foo 1' -> docker/dummy.ubuntu.amd.Dockerfile" in output
    assert "nvidia_only [n_gpus 1] -> none (no Dockerfile of docker/nvonly.* fits the context" in output


def test_relative_paths_and_the_default_package_mean_the_callers_directory(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "pkg")
    (tmp_path / "pkg" / "ctx.json").write_text('{"gpu_vendor": "NVIDIA", "mirrorlocal": "/m"}')
    rc, output, result = playbook({"madengine_tags": ["dummy"], "madengine_additional_context_file": "ctx.json"},
                                  cwd=tmp_path / "pkg")
    assert rc == 0, output
    assert result["mad_dir"] == str(tmp_path / "pkg")
    assert result["models"][0]["dockerfiles"] == ["docker/dummy.ubuntu.nvidia.Dockerfile"]
    assert result["context"] == {"gpu_vendor": "NVIDIA", "guest_os": "UBUNTU", "mirrorlocal": "/m"}
    assert result["discover_warnings"] == ["context key 'mirrorlocal' is accepted for compatibility but not acted on yet"]
    assert "[WARNING]: context key 'mirrorlocal' is accepted" in output
    rc, output, result = playbook({"madengine_mad_dir": "pkg", "madengine_tags": "cpu"}, cwd=tmp_path)
    assert rc == 0, output
    assert result["mad_dir"] == str(tmp_path / "pkg")


def test_check_mode_discovers_the_same_and_changes_nothing():
    rc, output, result = playbook({"madengine_mad_dir": str(PACKAGE), "madengine_tags": "dummy3/tuned"}, check=True)
    assert rc == 0, output
    assert [m["name"] for m in result["models"]] == ["dummy3/model4_bs128", "dummy3/model4_bs256"]
    assert "changed=0" in output


@pytest.mark.parametrize(("extravars", "message"), [
    ({"madengine_tags": "dumy"}, "the tag 'dumy' matches no model; closest model names and tags: dummy"),
    ({"madengine_tags": "dummy", "madengine_additional_context": {"gpu_vender": "AMD"}},
     "unknown context key 'gpu_vender': did you mean 'gpu_vendor'?"),
])
def test_bad_input_fails_the_task_with_one_message_and_exit_code_4(extravars, message):
    rc, output, _result = playbook({"madengine_mad_dir": str(PACKAGE), **extravars})
    assert rc != 0
    assert message in output
    assert '"exit_code": 4' in output
    assert "Traceback" not in output

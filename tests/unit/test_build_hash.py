"""The content hash: what changes it (everything the engine builds from) and what does not."""
from __future__ import annotations

import os

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _build

DOCKERFILE = "FROM madengine/base:bookworm\nCOPY . /ctx\n"
BASES = {"madengine/base:bookworm": "sha256:aaa"}


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "docker"
    (root / "sub").mkdir(parents=True)
    (root / "a.Dockerfile").write_text(DOCKERFILE)
    (root / "file.txt").write_text("one\n")
    (root / "sub" / "tool.sh").write_text("#!/bin/sh\n")
    (root / "ignored.log").write_text("noise\n")
    (root / ".dockerignore").write_text("# logs are not sent\n*.log\n")
    return root


def hash_of(root, build_args=None, bases=None, dockerfile=DOCKERFILE, in_context="a.Dockerfile"):
    _build._context_cache.clear()
    return _build.content_hash(dockerfile, str(root), in_context, build_args or {}, bases or BASES)


def test_same_inputs_give_the_same_hash(context):
    assert hash_of(context) == hash_of(context)


@pytest.mark.parametrize("change", [
    lambda root: (root / "file.txt").write_text("two\n"),
    lambda root: (root / "new.txt").write_text("new\n"),
    lambda root: (root / "sub" / "tool.sh").chmod(0o755),
    lambda root: (root / "sub" / "tool.sh").rename(root / "sub" / "tool2.sh"),
    lambda root: (root / "emptydir").mkdir(),
    lambda root: os.symlink("file.txt", root / "link"),
    lambda root: (root / ".dockerignore").write_text("*.log\nsub\n"),
])
def test_any_change_to_what_the_engine_receives_changes_the_hash(context, change):
    before = hash_of(context)
    change(context)
    assert hash_of(context) != before


def test_files_excluded_by_dockerignore_do_not_count(context):
    before = hash_of(context)
    (context / "ignored.log").write_text("other noise\n")
    (context / "more.log").write_text("x\n")
    assert hash_of(context) == before


def test_times_do_not_count(context):
    before = hash_of(context)
    os.utime(context / "file.txt", (1, 1))
    assert hash_of(context) == before


@pytest.mark.parametrize("kwargs", [
    {"build_args": {"MYARG": "v2"}},
    {"bases": {"madengine/base:bookworm": "sha256:bbb"}},
    {"dockerfile": DOCKERFILE + "RUN true\n"},
])
def test_build_args_base_ids_and_the_dockerfile_count(context, kwargs):
    assert hash_of(context, **kwargs) != hash_of(context)


def test_with_an_outside_dockerfile_an_ignored_context_dockerfile_does_not_count(context):
    (context / "Dockerfile").write_text("FROM x\n")
    (context / ".dockerignore").write_text("*.log\nDockerfile\n")
    before = hash_of(context, in_context=None)
    (context / "Dockerfile").write_text("FROM y\n")
    assert hash_of(context, in_context=None) == before

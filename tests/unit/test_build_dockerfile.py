"""What the build reads out of a Dockerfile: base images and ARG defaults."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils._build import base_images, dockerfile_arg_default

MULTI_STAGE = """\
# CONTEXT {'gpu_vendor': 'AMD'}
ARG BASE_DOCKER=rocm/pytorch:latest
ARG TOOLS=${BASE_DOCKER}
FROM ${TOOLS} AS tools
RUN make
FROM --platform=linux/amd64 \\
     $BASE_DOCKER
COPY --from=tools /out /out
FROM tools
FROM scratch
"""


def test_bases_resolve_global_args_and_leave_out_stages_and_scratch():
    assert base_images(MULTI_STAGE, {}) == ["rocm/pytorch:latest"]


def test_a_build_arg_overrides_the_arg_default_of_a_base():
    assert base_images(MULTI_STAGE, {"BASE_DOCKER": "madengine/base:bookworm"}) == ["madengine/base:bookworm"]


@pytest.mark.parametrize("text, expected", [
    ("ARG V=${MISSING:-fallback}\nFROM img:$V\n", ["img:fallback"]),
    ("ARG V=set\nFROM img${V:+-x}\n", ["img-x"]),
    ("FROM a\nFROM b\n", ["a", "b"]),
])
def test_arg_substitution_forms(text, expected):
    assert base_images(text, {}) == expected


def test_arg_defaults_are_read_from_arg_or_env_lines():
    text = "FROM x\nARG MAD_SYSTEM_GPU_ARCHITECTURE=gfx942\nENV BASE_DOCKER \"b:1\"\n"
    assert dockerfile_arg_default(text, "MAD_SYSTEM_GPU_ARCHITECTURE") == "gfx942"
    assert dockerfile_arg_default(text, "BASE_DOCKER") == "b:1"
    assert dockerfile_arg_default(text, "ABSENT") is None

"""additional_docker_run_options: known options become SDK arguments, anything else is refused."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils._docker_args import parse_run_options
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError


def test_empty_options_ask_for_nothing():
    opts = parse_run_options("  ")
    assert opts.environment == {} and opts.binds == [] and opts.shm_size is None


def test_common_options_map_onto_sdk_fields():
    opts = parse_run_options(
        "--shm-size 16G --ipc=host --network none --privileged --cap-add SYS_ADMIN "
        "--security-opt apparmor=unconfined --ulimit memlock=-1:-1 --ulimit nofile=1024 "
        "-e A=1 --env 'B=two words' -v /data:/data:ro --volume=/x:/y --device /dev/fuse "
        "--group-add render -u 1000:1000 -w /work --entrypoint /bin/sh --cpuset-cpus 0-3 "
        "-m 2g --hostname node1 --add-host db:10.0.0.1 --tmpfs /scratch:size=1g -l team=perf")
    assert opts.shm_size == 16 * 1024 ** 3
    assert (opts.ipc_mode, opts.network_mode, opts.privileged) == ("host", "none", True)
    assert opts.cap_add == ["SYS_ADMIN"] and opts.security_opt == ["apparmor=unconfined"]
    assert opts.ulimits == [{"name": "memlock", "soft": -1, "hard": -1},
                            {"name": "nofile", "soft": 1024, "hard": 1024}]
    assert opts.environment == {"A": "1", "B": "two words"}
    assert opts.binds == ["/data:/data:ro", "/x:/y"]
    assert opts.devices == ["/dev/fuse"] and opts.group_add == ["render"]
    assert (opts.user, opts.working_dir, opts.entrypoint) == ("1000:1000", "/work", ["/bin/sh"])
    assert (opts.cpuset_cpus, opts.mem_limit, opts.hostname) == ("0-3", 2 * 1024 ** 3, "node1")
    assert opts.extra_hosts == {"db": "10.0.0.1"} and opts.tmpfs == {"/scratch": "size=1g"}
    assert opts.labels == {"team": "perf"}


def test_short_options_take_attached_values():
    opts = parse_run_options("-eFOO=bar -v=/a:/b")
    assert opts.environment == {"FOO": "bar"} and opts.binds == ["/a:/b"]


def test_a_bare_env_name_copies_the_callers_value(monkeypatch):
    monkeypatch.setenv("MADENGINE_TEST_PASS", "through")
    monkeypatch.delenv("MADENGINE_TEST_ABSENT", raising=False)
    opts = parse_run_options("-e MADENGINE_TEST_PASS -e MADENGINE_TEST_ABSENT")
    assert opts.environment == {"MADENGINE_TEST_PASS": "through"}


def test_shell_metacharacters_stay_plain_text():
    opts = parse_run_options("-e 'X=$(rm -rf /); echo hi' -e Y=`id`")
    assert opts.environment == {"X": "$(rm -rf /); echo hi", "Y": "`id`"}


@pytest.mark.parametrize("text, message", [
    ("--rm", "unsupported docker run option '--rm'"),
    ("--gpus all", "unsupported docker run option '--gpus'"),
    ("-it", "unsupported docker run option '-i'"),
    ("ubuntu", "unsupported docker run option 'ubuntu'"),
    ("--shm-size lots", "--shm-size needs a size"),
    ("--ulimit memlock", "--ulimit 'memlock' is not NAME=SOFT"),
    ("-v relative", "-v 'relative' is not HOST_PATH:CONTAINER_PATH"),
    ("-v /a:/b:xx", "unknown mode 'xx'"),
    ("--device dev/fuse", "--device 'dev/fuse' is not HOST_DEVICE"),
    ("-e 1A=2", "-e '1A=2' is not NAME=value"),
    ("--ipc", "--ipc needs a value"),
    ("--privileged=maybe", "--privileged takes no value"),
    ("-e 'unterminated", "cannot split"),
])
def test_bad_options_are_refused_with_the_option_named(text, message):
    with pytest.raises(InvalidInputError) as err:
        parse_run_options(text, "additional_docker_run_options of model m")
    assert message in err.value.message
    assert "model m" in err.value.message


def test_the_refusal_lists_what_is_supported():
    with pytest.raises(InvalidInputError, match="Supported: .*--shm-size"):
        parse_run_options("--pid host")

"""--live-output on this machine: the driver follows the run logs the models write."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "driver"))

from madengine import progress  # noqa: E402 - the driver from this checkout


@pytest.fixture
def printed(monkeypatch) -> list:
    lines: list = []
    monkeypatch.setattr(progress.err, "print", lambda text, *a, **k: lines.append(str(text)))
    return lines


def test_a_log_an_earlier_run_left_is_followed_from_its_start_once_this_run_rewrites_it(tmp_path, printed):
    log = tmp_path / "m_df.run.live.log"
    log.write_text("old line\n" * 50)
    os.utime(log, ns=(1, 1))  # written long ago
    follower = progress.LogFollower(tmp_path)
    follower.poll()
    assert printed == []
    log.write_text("new first line\nperformance: 1 x\n")  # truncated and rewritten, shorter
    follower.poll()
    assert printed == ["[m_df] new first line", "[m_df] performance: 1 x"]


def test_an_untouched_earlier_log_is_not_printed_and_a_new_one_is(tmp_path, printed):
    (tmp_path / "old_df.run.live.log").write_text("old\n")
    follower = progress.LogFollower(tmp_path)
    (tmp_path / "new_df.run.live.log").write_text("hello\npartial")
    follower.poll()
    assert printed == ["[new_df] hello"]
    with open(tmp_path / "new_df.run.live.log", "a") as fh:
        fh.write(" line\n")
    follower.poll()
    assert printed == ["[new_df] hello", "[new_df] partial line"]

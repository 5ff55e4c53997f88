# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors. Raised deep, turned into one clear message at the edge.

Every error says what is wrong, where, and how to fix it; ``exit_code`` follows
the CLI contract (1 general, 2 build, 3 run, 4 invalid input).
"""
from __future__ import annotations


class MadError(Exception):
    """Base of every error madengine reports to a user."""

    exit_code = 1
    kind = "error"

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.what
        if self.where:
            text += f" (in {self.where})"
        if self.fix:
            text += f". {self.fix}"
        return text

    def to_result(self) -> dict:
        """The fields a module adds to ``fail_json`` so the driver can map exit codes."""
        return {"msg": self.message, "error_kind": self.kind, "exit_code": self.exit_code}


class InvalidInputError(MadError):
    """Bad input from the user: a file, a flag, a tag, a context key."""

    exit_code = 4
    kind = "invalid_input"


class EngineError(MadError):
    """The container engine is unreachable or refused an operation."""

    exit_code = 1
    kind = "engine"


class BuildError(MadError):
    exit_code = 2
    kind = "build"


class RunError(MadError):
    exit_code = 3
    kind = "run"

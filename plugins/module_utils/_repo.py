# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A model's ``url``: the git repository cloned as its run directory (MAD-FORMAT 1).

Upstream (``RunModels.run_model_impl``) runs ``git clone <url>`` inside the container in
``/myworkspace``, names the run directory after the URL's last path part, reads
``git rev-parse HEAD`` into perf.csv's ``git_commit``, updates submodules, then copies the
model's scripts folder into the clone (``cp -vLR <scripts>/. <dir>/``) and runs the script
there. It has no branch or commit field: the default branch is what runs.

Here the same layout is built without git or network in the image: :func:`plan_repo` is
pure (folder name, URL without any password, how git gets the model's ``cred``), and
:func:`clone` runs the node's ``git`` (argv lists, a shallow clone, one deadline for every
call, the process group killed when it passes). The run then copies the tree into the
container. Credentials never reach argv: git's credential helper (scoped to the URL's
host) prints them from environment variables, and every message is scrubbed.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.madengine.core.plugins.module_utils._credentials import scrub
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError, RunError

ENV_USERNAME = "MADENGINE_GIT_USERNAME"
ENV_PASSWORD = "MADENGINE_GIT_PASSWORD"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCP_LIKE = re.compile(r"^[^/:]+@[^/:]+:")  # git@github.com:ROCm/repo.git
_ERROR_CHARS = 1500
INSTALL_GIT = ("install git on the node (apt-get install git, dnf install git) "
               "or remove the model's url")


class CloneTimeout(Exception):
    """The deadline passed while git ran (git was killed)."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


@dataclass
class RepoPlan:
    """How one model's repository is cloned. ``url`` never holds a password."""

    url: str
    name: str  # the run directory's folder name
    scheme: str = ""  # https, http, ssh, file, ... ("ssh" for scp-like addresses)
    host: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ssh_key_file: str = ""
    cred: str = ""  # the credential.json entry used, for messages

    @property
    def secrets(self) -> List[str]:
        return [self.password] if self.password else []

    def config_args(self) -> List[str]:
        """git ``-c`` options: no secret in them, only the names of the variables."""
        args = ["-c", "credential.helper="]  # no stored helper answers, or stores, our login
        if self.password and self.scheme in ("http", "https"):
            user = "username=%s\\n" if self.username else ""
            values = f'"${ENV_USERNAME}" ' if self.username else ""
            helper = ('!f() { test "$1" = get || return 0; '
                      f"printf '{user}password=%s\\n' {values}\"${ENV_PASSWORD}\"; }}; f")
            args += ["-c", f"credential.{self.scheme}://{self.host}.helper={helper}"]
        return args

    def env(self, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """The environment of every git call: never a prompt, the login in variables."""
        env = dict(os.environ if base is None else base)
        for name in ("SSH_ASKPASS", "GIT_SSH", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
            env.pop(name, None)
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", GCM_INTERACTIVE="never", LC_ALL="C")
        if self.password:
            env[ENV_PASSWORD] = self.password
        if self.username:
            env[ENV_USERNAME] = self.username
        if self.scheme == "ssh":
            ssh = ["ssh", "-o", "BatchMode=yes"]
            if self.username:
                ssh += ["-l", self.username]
            if self.ssh_key_file:
                ssh += ["-i", self.ssh_key_file, "-o", "IdentitiesOnly=yes",
                        "-o", "StrictHostKeyChecking=accept-new"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        return env


def repo_dir_name(url: str) -> str:
    """The run directory's name: the URL's last path part, as upstream, less a ``.git``
    suffix (git's own folder name; upstream's ``cd <name>.git`` fails there)."""
    text = url.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")
    last = re.split(r"[/:]", text)[-1] if text else ""
    if last.endswith(".git"):
        last = last[:-len(".git")]
    return last


def _split_userinfo(url: str) -> Tuple[str, str, str, str, str]:
    """(url without password, scheme, host, username, password)."""
    if _SCP_LIKE.match(url):
        user, _at, rest = url.partition("@")
        return url, "ssh", rest.split(":", 1)[0], user, ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return url, scheme or "file", "", "", ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    username, password = parts.username or "", parts.password or ""
    netloc = (f"{username}@{host}" if username else host)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), scheme, host, \
        username, password


def plan_repo(model: Mapping[str, Any], credentials: Optional[Mapping[str, Any]] = None,
              where: str = "") -> Optional[RepoPlan]:
    """The clone the model's ``url`` asks for (None without one). Raises
    :class:`InvalidInputError` for a URL that names no usable folder."""
    raw = model.get("url")
    if raw in (None, ""):
        return None
    where = where or f"model {model.get('name')}"
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(f"url must be a git repository address, not {raw!r}", where)
    url, scheme, host, username, password = _split_userinfo(raw.strip())
    name = repo_dir_name(url)
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"url {scrub(url, [password])!r} does not end in a usable folder name (got {name!r})", where,
            "End it with the repository's name, e.g. https://github.com/ROCm/pytorch-micro-benchmarking")
    plan = RepoPlan(url=url, name=name, scheme=scheme, host=host, username=username, password=password)
    cred_name = str(model.get("cred") or "").strip()
    entry = (credentials or {}).get(cred_name) if cred_name else None
    if isinstance(entry, Mapping):
        plan.cred = cred_name
        plan.username = str(entry.get("username") or plan.username)
        plan.password = str(entry.get("password") or entry.get("token") or plan.password)
        plan.ssh_key_file = str(entry.get("ssh_key_file") or "")
    return plan


class _Git:
    """Runs git in ``cwd`` with the plan's env, until ``deadline`` (monotonic; None: none)."""

    def __init__(self, plan: RepoPlan, deadline: Optional[float], hidden: List[str]) -> None:
        self.plan, self.deadline, self.hidden = plan, deadline, hidden
        self.env = plan.env()
        self.git = shutil.which("git", path=self.env.get("PATH"))
        if self.git is None:
            raise RunError(f"git is not installed on this node, and model url {plan.url} needs it", fix=INSTALL_GIT)

    def __call__(self, args: List[str], cwd: str, step: str) -> Tuple[int, str]:
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise CloneTimeout(step)
        try:
            proc = subprocess.Popen([self.git] + self.plan.config_args() + args, cwd=cwd, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise RunError(f"cannot run {self.git} for model url {self.plan.url}: {exc.strerror}",
                           fix=INSTALL_GIT) from None
        try:
            output = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CloneTimeout(step) from None
        except BaseException:  # stopped (SIGTERM): git must not outlive the run
            _kill_group(proc)
            raise
        return proc.returncode, self.scrub(output.decode("utf-8", errors="replace"))

    def scrub(self, text: str) -> str:
        return scrub(text, self.hidden)


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """Kill git and its helpers (remote-https, ssh: all in its session), so no pipe stays
    open and nothing outlives the run."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.communicate()


def _tail(text: str) -> str:
    """git's message on one line, without the 'Cloning into <temp path>' chatter."""
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("Cloning into ")]
    text = " ".join(lines)
    return text if len(text) <= _ERROR_CHARS else "..." + text[-_ERROR_CHARS:]


def clone(plan: RepoPlan, parent: str, deadline: Optional[float] = None,
          hidden: Optional[List[str]] = None) -> Tuple[str, str, str]:
    """Clone into ``parent/<name>``; (path, commit, git's output). Raises :class:`RunError`
    (git missing, clone failed; git's message scrubbed of ``hidden`` and the login) or
    :class:`CloneTimeout` when ``deadline`` passes."""
    secrets = sorted(set(plan.secrets + list(hidden or [])), key=len, reverse=True)
    git = _Git(plan, deadline, secrets)
    parent = os.path.abspath(parent)
    target = os.path.join(parent, plan.name)
    step = f"git clone of {plan.url}"
    code, output = git(["clone", "--depth", "1", "--", plan.url, target], parent, step)
    if code != 0 and "shallow" in output.lower():  # dumb HTTP servers cannot serve --depth
        shutil.rmtree(target, ignore_errors=True)
        code, output = git(["clone", "--", plan.url, target], parent, step)
    if code != 0:
        login = f" with credential {plan.cred!r}" if plan.cred else ""
        raise RunError(f"git clone of {plan.url}{login} failed (exit {code}): {_tail(output) or 'no message'}")
    log = output
    if os.path.isfile(os.path.join(target, ".gitmodules")):
        sub = ["submodule", "update", "--init", "--recursive"]
        step = f"git submodule update in {plan.url}"
        code, output = git(sub + ["--depth", "1"], target, step)
        if code != 0:  # a server that cannot give a pinned commit shallowly
            code, output = git(sub, target, step)
        log += output
        if code != 0:
            raise RunError(f"git submodule update of {plan.url} failed (exit {code}): {_tail(output)}")
    code, output = git(["rev-parse", "--verify", "--quiet", "HEAD"], target, f"git rev-parse in {plan.url}")
    if code != 0:
        raise RunError(f"the clone of {plan.url} has no commit to run (an empty repository?)")
    return target, output.strip(), log

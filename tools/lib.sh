# shellcheck shell=bash
# Shared helpers for tools/* and tests/run. Source it; it defines functions and a few
# variables and changes nothing by itself.

MADENGINE_REPO=${MADENGINE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
MADENGINE_VENV=${MADENGINE_VENV:-$MADENGINE_REPO/.venv}
MADENGINE_CACHE=${MADENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/madengine}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# The interpreter the venv is made from: $PYTHON, else python3 (3.11+: ansible-core 2.19 needs it
# on the controller; newer Pythons work too).
madengine_python() {
    local py=${PYTHON:-python3}
    command -v "$py" >/dev/null 2>&1 || die "no '$py' on PATH; install Python 3.11+ or set PYTHON=/path/to/python3.11"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$("$py" -V 2>&1) is too old; madengine needs Python 3.11+ (set PYTHON=...)"
    "$py" -c 'import venv, ensurepip' 2>/dev/null ||
        die "'$py' cannot make virtual environments; on Debian/Ubuntu: apt-get install python3-venv"
    printf '%s\n' "$py"
}

# Make $MADENGINE_VENV with the project installed editable, plus the test tools.
# Reinstalls only when pyproject.toml changed since the last install (a stamp in the venv).
venv_ensure() {
    local stamp="$MADENGINE_VENV/.madengine-pyproject.sha256" log="$MADENGINE_VENV/pip-install.log" want py
    want=$(sha256sum "$MADENGINE_REPO/pyproject.toml" | cut -d' ' -f1)
    if [ -x "$MADENGINE_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        say "venv $MADENGINE_VENV is up to date"
        return 0
    fi
    if [ ! -x "$MADENGINE_VENV/bin/python" ]; then
        py=$(madengine_python) || exit 1
        say "creating venv $MADENGINE_VENV with $("$py" -V 2>&1)"
        "$py" -m venv "$MADENGINE_VENV"
    fi
    say "installing madengine (editable) and its test tools into $MADENGINE_VENV (log: $log)"
    # pip's own chatter (build warnings, index notes) goes to the log; shown when it fails.
    if ! { "$MADENGINE_VENV/bin/python" -m pip install --upgrade pip &&
        "$MADENGINE_VENV/bin/python" -m pip install -e "${MADENGINE_REPO}[test]"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "pip could not install madengine into $MADENGINE_VENV (full log: $log)"
    fi
    printf '%s\n' "$want" >"$stamp"
}

# The pip version whose get-pip.py the installed ansible-test asks for (e.g. 24.2).
ansible_test_pip_version() {
    "$MADENGINE_VENV/bin/python" - <<'PY'
import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([^']+)'", src.read_text()).group(1))
PY
}

# ansible-test bootstraps pip in each sanity venv with a get-pip.py it downloads from a host
# that is not reachable here; it uses a cached copy first. This stand-in does the same job
# with ensurepip and PyPI.
ansible_test_get_pip_standin() {
    local version file
    version=$(ansible_test_pip_version) || die "cannot tell which pip ansible-test wants"
    file="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
    [ -f "$file" ] && return 0
    say "writing the pip bootstrap stand-in $file"
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<'PY'
"""Stand-in for get-pip.py (written by madengine's tools/lib.sh): ensurepip, then pip install."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
}

# A directory D with D/ansible_collections/madengine/core -> the repository (what conftest.py
# makes too), for tools that look collections up by path.
collection_link_dir() {
    local top="$MADENGINE_REPO/tests/output/collections"
    local link="$top/ansible_collections/madengine/core"
    if [ ! -L "$link" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$MADENGINE_REPO" "$link"
    fi
    printf '%s\n' "$top"
}

# The collection's files, NUL-separated, relative to the repository: what git would keep
# (tracked + untracked, not ignored) minus galaxy.yml's build_ignore (driver, tools, CI,
# molecule scenarios): the collection as it ships.
collection_files() {
    (
        cd "$MADENGINE_REPO" || exit 1
        git ls-files -z --cached --others --exclude-standard |
            "$MADENGINE_VENV/bin/python" -c '
import os, sys, fnmatch, yaml
ignore = yaml.safe_load(open("galaxy.yml")).get("build_ignore") or []
def kept(path):
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return os.path.isfile(path) and not any(fnmatch.fnmatch(p, pat) for p in prefixes for pat in ignore)
sys.stdout.write("\0".join(p for p in sys.stdin.read().split("\0") if p and kept(p)))
'
    )
}

# A real directory tree .../ansible_collections/madengine/core under $1 holding
# collection_files (ansible-test checks the collection as it ships). Prints its path.
collection_copy() {
    local dest="$1/ansible_collections/madengine/core"
    mkdir -p "$dest"
    { collection_files | (cd "$MADENGINE_REPO" && tar --null -cf - -T -) | tar -C "$dest" -xf -; } ||
        die "could not copy the collection to $dest"
    printf '%s\n' "$dest"
}

# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An HTML report of a perf.csv: totals, the latest result of each model, every row.

The template is part of this file (module_utils travel to the host alone, without the
collection's other files) and rendered with Jinja2, autoescaped. The page holds no time
of its own, so the same perf.csv gives the same page and a second report is no change.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

try:
    import jinja2
    from markupsafe import Markup
    HAS_JINJA2 = True
    JINJA2_IMPORT_ERROR = None
except ImportError as exc:  # the module reports missing_required_lib('jinja2')
    jinja2 = Markup = None
    HAS_JINJA2 = False
    JINJA2_IMPORT_ERROR = exc

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError, MadError
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import (
    format_value, read_rows, to_float)

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.source { color: #666; font-size: .85rem; }
.totals span { display: inline-block; margin-right: 1rem; padding: .2rem .6rem; border-radius: .3rem; background: #f1f1f4; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { border: 1px solid #d8d8de; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f1f1f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.SUCCESS { color: #137333; font-weight: 600; }
.FAILURE { color: #b3261e; font-weight: 600; }
.SKIPPED { color: #8a6d00; font-weight: 600; }
.up { color: #137333; } .down { color: #b3261e; }
.wide { overflow-x: auto; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<div class="source">{{ source }} &middot; {{ rows | length }} result(s)</div>
<p class="totals">{% for status, count in totals %}<span class="{{ status }}">{{ status }}: {{ count }}</span>{% endfor %}</p>
<h2>Latest result of each model</h2>
<table id="latest">
<tr>{% for c in latest_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in latest %}<tr>{% for c in latest_columns %}{{ cell(row, c) }}{% endfor %}</tr>
{% endfor %}</table>
<h2>All results</h2>
<div class="wide"><table id="all">
<tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for c in columns %}{{ cell(row, c) }}{% endfor %}</tr>
{% endfor %}</table></div>
</body>
</html>
"""

LATEST_COLUMNS = ("model", "machine_name", "gpu_architecture", "performance", "metric",
                  "relative_change", "status", "test_duration", "reason")
_NUMERIC = ("performance", "relative_change", "build_duration", "test_duration", "n_gpus")


def _cell(row: Mapping[str, Any], column: str) -> Any:
    value = format_value(row.get(column))
    classes = []
    if column == "status" and value in ("SUCCESS", "FAILURE", "SKIPPED"):
        classes.append(value)
    if column in _NUMERIC and to_float(value) is not None:
        classes.append("num")
        if column == "relative_change":
            change = to_float(value) or 0.0
            classes.append("up" if change > 0 else "down" if change < 0 else "")
    attr = f' class="{" ".join(c for c in classes if c)}"' if classes else ""
    return Markup(f"<td{attr}>{{}}</td>").format(value)


def render_html(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *, source: str,
                title: str = "madengine performance report") -> str:
    """The report page of ``rows`` (perf.csv rows, in file order) with ``columns``."""
    if not HAS_JINJA2:
        raise MadError(f"the Python package 'jinja2' is not installed ({JINJA2_IMPORT_ERROR})",
                       fix="Install it on the controller: `pip install jinja2`")
    latest: dict = {}
    for row in rows:  # later rows win: perf.csv is in time order
        key = (row.get("model"), row.get("metric"), row.get("gpu_architecture"), row.get("machine_name"))
        latest.pop(key, None)
        latest[key] = row
    counts: dict = {}
    for row in rows:
        status = format_value(row.get("status")) or "UNKNOWN"
        counts[status] = counts.get(status, 0) + 1
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(TEMPLATE).render(
        title=title, source=source, rows=list(rows), columns=list(columns),
        latest=list(latest.values()), latest_columns=[c for c in LATEST_COLUMNS if c in columns],
        totals=sorted(counts.items()), cell=_cell)
    return page


def write_html_report(csv_path: str, html_path: str, *, check_mode: bool = False,
                      pending: Sequence[Mapping[str, Any]] | None = None) -> bool:
    """Render perf.csv (plus ``pending`` rows not yet written, in check mode) to ``html_path``.

    Returns True when the page is new or different. Raises InvalidInputError when there is
    no perf.csv to report on.
    """
    columns, rows = read_rows(csv_path)
    if not columns and not pending:
        raise InvalidInputError(f"there is no perf.csv at {csv_path} to report on", where="perf_csv",
                                fix="Give the path of a perf.csv (--csv-file / madengine_report_csv)")
    if pending:
        columns = columns or list(pending[0])
        rows = rows + [dict(r) for r in pending]
    if os.path.isdir(html_path):
        raise InvalidInputError(f"{html_path} is a directory", where="html_report",
                                fix="Give the path of the HTML file to write")
    page = render_html(columns, rows, source=os.path.basename(csv_path))
    try:
        with open(html_path, encoding="utf-8") as handle:
            unchanged = handle.read() == page
    except OSError:
        unchanged = False
    if unchanged or check_mode:
        return not unchanged
    folder = os.path.dirname(os.path.abspath(html_path))
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(html_path)}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(tmp, html_path)
    except OSError as exc:
        raise InvalidInputError(f"cannot write the report {html_path}: {exc.strerror or exc}",
                                where="html_report", fix="Choose a writable path") from None
    return True

#!/usr/bin/python
# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: perf_collect
short_description: Append the run records of every host to perf.csv and write the run summary
version_added: "0.1.0"
description:
  - Runs on the controller. Takes the run records of every GPU node (as C(madengine.core.mad_run)
    returns them, or registered loops of them, or plain perf rows, or a dict of those keyed by
    host) and appends one perf.csv row per result, in the columns of the MAD format (29 columns,
    then C(reason), C(image_digest), extra columns, C(extras)).
  - perf.csv is only ever appended to; the header is written once. Concurrent appenders are
    serialised with a lock on the file, so rows never interleave.
  - Every planned run that came back from no node, and every failed build, still gets a
    FAILURE row; a failure always writes a row.
  - C(relative_change) of a successful result is its performance against the mean of the last
    5 successful results of the same model, metric and GPU architecture in the results
    history (an SQLite file, seeded from an existing perf.csv), as a signed percentage.
  - Writes perf_entry.json (this run's rows) and the run summary JSON, and optionally an HTML
    report of the whole perf.csv. With O(mode=report) it only writes the HTML report.
author:
  - madengine maintainers (@madengine)
options:
  records:
    description:
      - The run records. A list (or host-keyed dict of lists) of C(mad_run) results
        C({records, status, reason, log_file, test_duration}), registered loop results
        C({results}), or perf rows C({model, performance, metric, status, ...}).
    type: raw
    default: []
    aliases: [results]
  build_records:
    description:
      - Build records of C(madengine.core.mad_build) (its C(builds), its whole result, the
        build manifest, or C({model, error}) entries). Each failed build adds a FAILURE row
        whose reason is C(build failed) and the error, for a model that has no row yet.
    type: raw
    default: []
    aliases: [failed_builds, builds]
  plan:
    description:
      - The run plan every node was given (entries C({image, build, model}) as
        C(madengine.core.mad_discover) returns them). With host names known (a host-keyed
        O(records) or O(node_failures)), each planned run no host reported gets a FAILURE row.
    type: list
    elements: dict
    default: []
  node_failures:
    description:
      - Host name to what went wrong on that node (empty when nothing did). Used as the reason
        of the FAILURE rows of the planned runs the node did not report.
    type: dict
    default: {}
  output_dir:
    description:
      - Folder of perf.csv, perf_entry.json, the summary and the history, unless given
        separately. Made when missing. A relative path is relative to the module's working directory.
    type: path
    default: .
  perf_csv:
    description: perf.csv to append to (relative paths are under O(output_dir)).
    type: path
    default: perf.csv
  perf_entry:
    description: JSON file with this run's rows (a list of dicts), replaced on every run.
    type: path
    default: perf_entry.json
  summary_output:
    description: The run summary JSON, replaced on every run.
    type: path
    default: run_summary.json
  history_db:
    description:
      - The results history used for C(relative_change), an SQLite file (WAL mode).
        Relative paths are under O(output_dir).
    type: str
    default: madengine_history.db
  html_report:
    description:
      - Also write an HTML report of the whole perf.csv here. With O(mode=report) it defaults
        to perf.csv's path with the suffix C(.html).
    type: path
  context:
    description:
      - Values for columns a row leaves empty, by column name (for example C(pipeline),
        C(build_number), C(deployment_type)); other keys are ignored, so the additional context
        can be passed as it is. C(build_number) otherwise comes from E(BUILD_NUMBER) (default 0)
        and C(pipeline) from E(pipeline).
    type: dict
    default: {}
  started:
    description: When the run began (epoch seconds or ISO 8601), for the summary; default now.
    type: raw
  mode:
    description:
      - C(collect) appends the records and writes every output; C(report) only renders
        O(html_report) from an existing perf.csv and ignores the records.
    type: str
    choices: [collect, report]
    default: collect
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Computes the rows and their relative_change and reports what would be appended; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Extra columns a later run brings (a perf.csv's header is never rewritten) go as JSON into the
    row's C(extras) cell; a perf.csv without that column (written by another tool) keeps them only
    in perf_entry.json and the history, with a warning.
  - C(changed) is true when rows were appended (or the HTML report changed); perf_entry.json and the
    summary are per-run outputs, rewritten every run.
requirements:
  - jinja2 (only for O(html_report))
seealso:
  - module: madengine.core.mad_run
"""

EXAMPLES = r"""
- name: Write perf.csv and the run summary from every node's results
  madengine.core.perf_collect:
    records: "{{ dict(groups.gpu_nodes | zip(groups.gpu_nodes | map('extract', hostvars, 'gpu_node_results'))) }}"
    plan: "{{ madengine_plan.runs }}"
    build_records: "{{ madengine_plan.failed_builds | default([]) }}"
    output_dir: /srv/mad/results
  register: collect

- name: Render an HTML report of an existing perf.csv
  madengine.core.perf_collect:
    mode: report
    perf_csv: /srv/mad/results/perf.csv
    html_report: /srv/mad/results/perf.html
"""

RETURN = r"""
rows:
  description: This run's perf rows (the 29 columns, then extra columns), as appended.
  returned: mode=collect
  type: list
  elements: dict
rows_appended:
  description: Number of rows appended to perf.csv (0 in check mode).
  returned: mode=collect
  type: int
summary:
  description:
    - The run summary, also written to O(summary_output) -
      C({started, finished, duration, totals {models, success, failure, skipped},
      models [{model, node, machine_name, status, performance, metric, relative_change,
      gpu_architecture, docker_image, build_duration, test_duration, reason, log_file,
      image_digest}] (one entry per perf row; totals count those rows), build_failures [{model, image, dockerfile, error, build_duration,
      log_file, host}], exit_code, files, warnings}).
  returned: mode=collect
  type: dict
exit_code:
  description: 0 when every result is SUCCESS or SKIPPED, 3 when a model run failed, 2 when only builds failed.
  returned: mode=collect
  type: int
perf_csv:
  description: Absolute path of perf.csv.
  returned: always
  type: str
perf_entry_file:
  description: Absolute path of perf_entry.json.
  returned: mode=collect
  type: str
summary_file:
  description: Absolute path of the run summary JSON.
  returned: mode=collect
  type: str
history_db:
  description: Absolute path of the results history.
  returned: mode=collect
  type: str
html_report:
  description: Absolute path of the HTML report, when one was asked for.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS
from ansible_collections.madengine.core.plugins.module_utils._module import run_body


def main():
    run_body(AnsibleModule(**SPECS["perf_collect"]), "perf_collect")


if __name__ == "__main__":
    main()

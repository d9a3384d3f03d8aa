"""Session reports: a self-contained HTML file and a JSON file with the same numbers.

* :mod:`~insole.report.plots` — the figures (matplotlib, PNG);
* :mod:`~insole.report.html` — the HTML page (figures embedded, no external resources);
* :func:`build_report` — results → the JSON document (docs/report.md) and the HTML text;
  :func:`write_report` writes both.
"""

from insole.report.build import build_report, json_path_for, write_report

__all__ = ["build_report", "json_path_for", "write_report"]

"""What leaves the host as files for other tools.

* :mod:`~insole.export.samples_csv` — a recording's samples as CSV in physical units;
* :mod:`~insole.export.events_csv` — STEPS.csv and RAISES.csv, the event tables that
  ``insole hil`` and ``insole simulate`` write (and the validation reads back).
"""

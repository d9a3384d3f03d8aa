"""What leaves the host as files for other tools.

* :mod:`~insole.export.samples_csv` — a recording's samples as CSV in physical units
  (one file, or one per foot for ``insole import csv``);
* :mod:`~insole.export.results_tables` — a session's own results (steps, cues, heel
  raises, a gaitmap stride list) as tables and CSV files;
* :mod:`~insole.export.parquet` — the same results and the samples as a Parquet
  dataset partitioned by participant, session and foot (docs/export.md);
* :mod:`~insole.export.events_csv` — STEPS.csv and RAISES.csv, the event tables that
  ``insole hil`` and ``insole simulate`` write (and the validation reads back).
"""

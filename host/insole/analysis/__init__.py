"""A session's results and measures, for reports and exports.

* :mod:`~insole.analysis.results` — :func:`session_results`: the steps, cues and heel
  raises of a recording (its own event packets, or a replay through the firmware), and
  what did not survive (data quality);
* :mod:`~insole.analysis.measures` — :func:`session_measures`: cadence, symmetry,
  foot-angle share in band, walking minutes, heel-raise sets, as plain JSON values
  (docs/report.md), and :func:`trend` across sessions.
"""

from insole.analysis.measures import report_document, session_measures, trend
from insole.analysis.results import (
    Band,
    CueResult,
    DataQuality,
    RaiseResult,
    SessionResults,
    StepResult,
    session_results,
)

__all__ = [
    "Band", "CueResult", "DataQuality", "RaiseResult", "SessionResults", "StepResult", "report_document",
    "session_measures", "session_results", "trend",
]  # fmt: skip

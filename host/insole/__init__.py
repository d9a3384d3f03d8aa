"""Host bridge for the insole firmware: protocol, links, recordings, replay, analysis."""

__version__ = "0.1.0"

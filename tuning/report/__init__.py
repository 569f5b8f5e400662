"""Reports a reader opens in a browser: one self-contained, interactive HTML file per sweep
(`sweep.py`) or comparison, built with `page.py` from plotly figures (`figures.py`); static PNGs
on request (`static.py`)."""

from tuning.report.sweep import Report, load_study, write_report

__all__ = ["Report", "load_study", "write_report"]

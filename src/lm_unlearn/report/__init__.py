"""Reports: eval.json -> self-contained report.html, verdict first, with plots and tables."""

from lm_unlearn.report.comparison import render_comparison
from lm_unlearn.report.html import redact_result, refresh_report, render_report, write_outputs
from lm_unlearn.report.verdict import overall, verdict_rows

__all__ = [
    "overall",
    "redact_result",
    "refresh_report",
    "render_comparison",
    "render_report",
    "verdict_rows",
    "write_outputs",
]

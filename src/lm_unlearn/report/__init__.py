"""Reports: eval.json -> self-contained report.html with plots and tables."""

from lm_unlearn.report.html import redact_result, render_comparison, render_report, write_outputs

__all__ = ["redact_result", "render_comparison", "render_report", "write_outputs"]

"""report.py: compare run and sweep folders in a Markdown report (collect.py reads, stats.py computes,
plots.py draws, markdown.py writes, cli.py is the command)."""
from .cli import main, write_report

__all__ = ["main", "write_report"]

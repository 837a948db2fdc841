"""The offline report: notebook-side helpers and the site builder behind ``cmdqv-lab report``.

Notebooks call :func:`answer` and :func:`param_table` (and :func:`cmdqv_lab.plots.show` for
charts); ``cmdqv-lab report`` executes every ``notebooks/NN-topic.py`` with papermill and renders a
static site that needs no network (:mod:`cmdqv_lab.report.site`).
"""

from cmdqv_lab.report.notebook import ANSWER_MIME, TABLE_MIME, answer, param_table, result_table
from cmdqv_lab.report.sources import cite

__all__ = ["ANSWER_MIME", "TABLE_MIME", "answer", "cite", "param_table", "result_table"]

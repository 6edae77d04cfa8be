"""Reporting: pure functions over records, and the files a sweep writes.

* :mod:`~robnp.report.records`: the one record schema (long-form evaluation records;
  the study's wide rows derived from them);
* :mod:`~robnp.report.stats`: aggregates across seeds, scaling trends;
* :mod:`~robnp.report.tables`: the printed and Markdown summary tables;
* :mod:`~robnp.report.document`: results.json (built once, read by everything else),
  writing and regenerating an output directory;
* :mod:`~robnp.report.plots`: the figures;
* :mod:`~robnp.report.validate`: reading results.json back (:func:`load_results`) and
  the study's checks of an output directory;
* :mod:`~robnp.report.teaching`: the teaching figures of ``robnp plot``, drawn from
  records and from labels computed by :mod:`robnp.verify.boundary`.

Nothing here runs a model: ``tests/test_layers.py`` holds this package to the modules
below it in the layer table of docs/architecture.md.
"""

from .document import (RESULTS_FILE, build_results, document_records, load_results,
                       regenerate, write_report)
from .tables import format_markdown_table, format_summary_table

__all__ = ["RESULTS_FILE", "build_results", "document_records", "load_results", "regenerate",
           "write_report", "format_summary_table", "format_markdown_table"]

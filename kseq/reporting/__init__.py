"""Reporting: `evaluation.report` (the metrics of a run), `plots`, `saliency` and the one-page
`html_report` a person reads.
"""

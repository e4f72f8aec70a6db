"""Data-quality gates (Great Expectations suites) for pipeline tables.

Importing this package is cheap: great_expectations is imported only when a suite runs.
"""

from components.quality.suites import SUITE_NAME, validate_reports

__all__ = ["SUITE_NAME", "validate_reports"]

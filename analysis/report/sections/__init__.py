"""The built-in report sections; importing this package registers them (in ``order``)."""

from analysis.report.sections import (
    accuracy,
    agreement,
    heterogeneity,
    image_quality,
    interchangeability,
    planning,
    reading_order,
    sensitivity,
    study,
)

__all__ = [
    "accuracy",
    "agreement",
    "heterogeneity",
    "image_quality",
    "interchangeability",
    "planning",
    "reading_order",
    "sensitivity",
    "study",
]

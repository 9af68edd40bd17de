"""The segment rule DSL: parse and validate, check references, compile to SQL, evaluate."""

from services.segmentation.rules.catalog import (
    SegmentDef,
    check_references,
    inputs,
    time_relative,
)
from services.segmentation.rules.compile import compile_rule, recheck_sql, time_terms
from services.segmentation.rules.evaluate import Facts, evaluate
from services.segmentation.rules.parse import parse

__all__ = [
    "Facts",
    "SegmentDef",
    "check_references",
    "compile_rule",
    "evaluate",
    "inputs",
    "parse",
    "recheck_sql",
    "time_relative",
    "time_terms",
]

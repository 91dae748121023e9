"""Evaluation: ScanNet v2 instance AP (official-equivalent), precision-recall curves, semantic mIoU,
folder evaluation (the HTML/Markdown report is an application: pcseg.apps.report)."""
from .folders import evaluate_folders, folder_evaluator, write_json
from .instance import (OVERLAPS, InstanceEvaluator, PRCurve, area_under_curve, average_precision, format_table,
                       precision_recall, to_json_dict)
from .semantic import SemanticEvaluator

__all__ = ["OVERLAPS", "InstanceEvaluator", "PRCurve", "SemanticEvaluator", "area_under_curve",
           "average_precision", "evaluate_folders", "folder_evaluator", "format_table", "precision_recall", "to_json_dict",
           "write_json"]

"""Evaluation: ScanNet v2 instance AP (official-equivalent), semantic mIoU, folder evaluation."""
from .folders import evaluate_folders, write_json
from .instance import OVERLAPS, InstanceEvaluator, average_precision, format_table, to_json_dict
from .semantic import SemanticEvaluator

__all__ = ["OVERLAPS", "InstanceEvaluator", "SemanticEvaluator", "average_precision", "evaluate_folders",
           "format_table", "to_json_dict", "write_json"]

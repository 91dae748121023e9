"""Evaluate official-format folders: GT ``<scene>.txt`` files against a submission folder
(docs/scannet-format.md §8), as ``evaluate_semantic_instance.py --gt_path --pred_path`` does."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from ..io.atomic import write_text
from ..io.compact import COMPACT_SUBDIR
from ..io.official import read_gt_txt, read_prediction_arrays
from .instance import InstanceEvaluator, to_json_dict

RESULT_FILE_NAME = "semantic_instance_evaluation.txt"  # the official output, not a prediction


def evaluate_folders(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, missing: str = "skip",
                     progress: bool = True) -> dict:
    """Instance AP of every prediction ``<pred_dir>/<scene>.txt`` (or pcseg's compact
    ``instances/<scene>.npz``, ``io.compact``) against ``<gt_dir>/<scene>.txt``.

    Returns the ``InstanceEvaluator.evaluate()`` dict; see ``folder_evaluator`` for the arguments.
    """
    return folder_evaluator(gt_dir, pred_dir, missing, progress).evaluate()


def folder_evaluator(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, missing: str = "skip",
                     progress: bool = True, semantic=None) -> InstanceEvaluator:
    """An ``InstanceEvaluator`` that has processed every prediction ``<pred_dir>/<scene>.txt`` against
    ``<gt_dir>/<scene>.txt`` (scenes named by file stem), for ``evaluate``, ``pr_curves`` and
    ``scene_results``.

    missing: what to do with GT scenes that have no prediction file: "skip" (the official
    behaviour: not evaluated) or "miss" (evaluated with no predictions: every GT instance missed).
    Either way a warning names them. A prediction file without a GT file is a DataError.

    semantic: a ``SemanticEvaluator`` that also processes ``<pred_dir>/semantic/<scene>.txt`` (one
    NYU40 id per vertex, as ``pcseg predict`` writes) of every scene with a prediction file, in the
    same pass; the GT class of a vertex is its GT id // 1000 (0, ignored, in no annotated object).
    """
    if missing not in ("skip", "miss"):
        raise ValueError(f"evaluate_folders: missing must be 'skip' or 'miss', got {missing!r}")
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not d.is_dir():
            raise DataError(d, None, f"{what} folder not found")
    gt_scenes = sorted(p.stem for p in gt_dir.glob("*.txt") if p.is_file())
    pred_scenes = sorted({p.stem for p in pred_dir.glob("*.txt") if p.is_file() and p.name != RESULT_FILE_NAME}
                         | {p.stem for p in (pred_dir / COMPACT_SUBDIR).glob("*.npz") if p.is_file()})
    if not gt_scenes:
        raise DataError(gt_dir, None, "no ground-truth <scene>.txt files")
    if not pred_scenes:
        raise DataError(pred_dir, None, f"no prediction <scene>.txt files at the top level (nor {COMPACT_SUBDIR}/<scene>.npz)")
    gt_set = set(gt_scenes)
    orphans = [s for s in pred_scenes if s not in gt_set]
    if orphans:
        raise DataError(pred_dir / f"{orphans[0]}.txt", None,
                        f"no ground truth {gt_dir / (orphans[0] + '.txt')} ({len(orphans)} prediction file(s) "
                        f"without GT: {', '.join(orphans[:5])}{', ...' if len(orphans) > 5 else ''})")
    pred_set = set(pred_scenes)
    absent = [s for s in gt_scenes if s not in pred_set]
    if absent:
        effect = "counted as all-missed" if missing == "miss" else "not evaluated (as the official script does)"
        warnings.warn(f"{len(absent)} of {len(gt_scenes)} GT scene(s) have no prediction file in {pred_dir}, "
                      f"{effect}: {', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}", stacklevel=2)
    scenes = gt_scenes if missing == "miss" else pred_scenes
    evaluator = InstanceEvaluator()
    for scene in tqdm(scenes, desc="evaluating", unit="scene", disable=not progress):
        gt_ids = read_gt_txt(gt_dir / f"{scene}.txt")
        if scene in pred_set:
            masks, labels, scores = read_prediction_arrays(pred_dir, scene, num_points=gt_ids.shape[0])
            evaluator.process_arrays(gt_ids, masks, labels, scores, name=scene)
            if semantic is not None:
                semantic.process(gt_ids // 1000, _read_semantic(pred_dir, scene), name=scene)
        else:
            evaluator.process_arrays(gt_ids, None, None, None, name=scene)
    return evaluator


def _read_semantic(pred_dir: Path, scene: str):
    from ..io.official import read_semantic_txt

    path = pred_dir / "semantic" / f"{scene}.txt"
    if not path.is_file():
        raise DataError(path, None, f"missing: {path.parent} has semantic predictions, but not for {scene}")
    return read_semantic_txt(path)


def write_json(result: dict, path: str | os.PathLike) -> Path:
    """Atomically write an evaluation result as JSON, NaN -> null."""
    return write_text(path, json.dumps(to_json_dict(result), indent=2, allow_nan=False) + "\n")

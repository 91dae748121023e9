"""The ``pcseg`` command: ``pcseg data|eval|viz|demo ...``.

Heavy modules are imported inside each command, so ``pcseg --help`` is instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import PcsegError

UP_AXES = ("z", "y", "x", "-z", "-y", "-x", "auto")  # pcseg.io.plain.UP_CHOICES (that module stays lazy)


def _cmd_data_synth(args) -> None:
    from .synth import write_synthetic_dataset

    summary = write_synthetic_dataset(args.out, args.scenes, seed=args.seed, frames=args.frames,
                                      workers=args.workers, progress=not args.quiet, domain=args.domain)
    print(_synth_summary_text(summary))
    print(f"wrote {args.scenes} scenes to {args.out}")


def _synth_summary_text(summary: dict) -> str:
    from .labels import INSTANCE_NAME_OF

    lines = [f"{'per room':24}{'mean':>10}{'min':>10}{'max':>10}"]
    for key, label in (("vertices", "vertices"), ("benchmark_instances", "benchmark instances"),
                       ("touching_pairs", "touching same-class pairs"), ("visible_fraction", "visible fraction"),
                       ("nn_spacing", "NN vertex spacing (m)"), ("segments", "segments")):
        v = summary[key]
        fmt = "{:10.3f}" if v["max"] < 10 else "{:10.0f}"
        lines.append(f"{label:24}" + "".join(fmt.format(v[k]) for k in ("mean", "min", "max")))
    names = ", ".join(INSTANCE_NAME_OF[c] for c in summary["classes_covered"] if c in INSTANCE_NAME_OF)
    lines.append(f"benchmark classes present ({summary['num_classes_covered']}/18): {names}")
    if "seconds" in summary:
        lines.append(f"time: {summary['seconds']:.1f} s ({summary['seconds'] / summary['scenes']:.2f} s/scene)")
    return "\n".join(lines)


def _cmd_data_segment(args) -> None:
    import time

    import numpy as np

    from .cluster.superpoints import DEFAULTS, scene_superpoints
    from .io import read_scene
    from .io.scannet import write_segments

    scene = read_scene(args.input, labels=False)
    settings = {**DEFAULTS, **{k: v for k, v in (("threshold", args.threshold), ("min_size", args.min_size),
                                                  ("color_weight", args.color_weight)) if v is not None}}
    start = time.perf_counter()
    segments = scene_superpoints(scene, **settings)
    seconds = time.perf_counter() - start
    graph = "mesh edges" if scene.faces is not None and len(scene.faces) else f"{settings['neighbours']} nearest neighbours"
    write_segments(args.out, scene.name, segments, {"method": "pcseg felzenszwalb", "graph": graph, **settings})
    sizes = np.bincount(segments) if len(segments) else np.zeros(1, np.int64)
    print(f"{scene.name}: {len(sizes)} superpoints over {graph} of {len(scene)} points (median {np.median(sizes):.0f} "
          f"points) in {seconds:.2f} s; wrote {args.out}")


def _cmd_data_export_gt(args) -> None:
    from .io.export import export_gt

    written = export_gt(args.scannet, args.out, labels_tsv=args.labels, split=args.split,
                        progress=not args.quiet)
    print(f"wrote {len(written)} GT files to {args.out}")


def _cmd_data_export_coco(args) -> None:
    from .baseline2d.coco import export_coco

    counts = export_coco(args.dataset, args.out, split=args.split, frames_dir=args.frames_dir, step=args.step,
                         images_dir=args.images, progress=not args.quiet)
    print(f"wrote {counts['images']} images and {counts['annotations']} instance annotations to {args.out}")


def _cmd_eval(args) -> None:
    from .evaluation import SemanticEvaluator, folder_evaluator, format_table, write_json
    from .evaluation.semantic import format_semantic

    if args.scenes and not args.report:
        raise PcsegError("eval: --scenes only serves the report's renders: give --report DIR too")
    # the prediction folder's semantic/ (pcseg predict writes it) is scored in the same pass
    semantic_eval = SemanticEvaluator() if (Path(args.pred) / "semantic").is_dir() else None
    evaluator = folder_evaluator(args.gt, args.pred, missing=args.missing, progress=not args.quiet,
                                 semantic=semantic_eval)
    result = evaluator.evaluate()
    print(format_table(result))
    semantic = semantic_eval.evaluate() if semantic_eval is not None else None
    if semantic is not None:
        print(format_semantic(semantic))
        result = {**result, "semantic": semantic}
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.report:
        from .apps.report import folder_loader, make_report

        notes = [f"ground truth: {Path(args.gt).resolve()}", f"predictions: {Path(args.pred).resolve()}",
                 f"{len(evaluator)} scene(s) evaluated; GT scenes without predictions: "
                 + ("counted as all-missed" if args.missing == "miss" else "skipped (official)")]
        if not args.scenes:
            print("report: no --scenes DATASET_ROOT given, so the report has no scene renders")
        load = folder_loader(args.scenes, args.pred) if args.scenes else None
        page = make_report(args.report, evaluator, load=load, notes=notes, result=result, semantic=semantic)
        print(f"report: {page}")


def _cmd_viz(args) -> None:
    from .io import read_scene
    from .viz import save_png
    from .viz.view import (frame_panels, read_prediction_files, render_panels, saved_extras, scene_panels,
                           semantic_shown)
    from .viz.window import SceneViewer, ViewerItem

    if args.color in ("errors", "embedding") and not args.pred and args.frame is None:
        raise PcsegError(f"viz: --color {args.color} needs --pred PRED_DIR (a `pcseg predict` folder"
                         + (" written with --save-embeddings)" if args.color == "embedding" else ")"))
    if args.frame is not None:  # a 2D frame: always a PNG
        frames_dir = Path(args.scene) / "frames"
        if not frames_dir.is_dir():
            raise PcsegError(f"{frames_dir}: no RGB-D frame folder (--frame needs a scene folder with frames/)")
        out = args.out or f"{Path(args.scene).name}_frame{args.frame}.png"
        print(f"wrote {save_png(frame_panels(frames_dir, args.frame), out)}")
        return
    from .pipelines.bottomup.orient import room_confidence

    scene = read_scene(args.scene, labels_tsv=args.labels, up=args.up, up_judge=room_confidence)
    window = args.out is None
    pred = None
    if args.pred:  # the window reads what the folder has, for C to cycle through
        has = saved_extras(args.pred, scene.name)
        pred = read_prediction_files(args.pred, scene,
                                     embeddings=args.color == "embedding" or (window and has["embeddings"]),
                                     semantic=args.color == "semantic" or (window and has["semantic"]))
    try:
        panels = scene_panels(scene, args.color, pred, side_by_side=args.side_by_side)
    except ValueError as e:  # e.g. a scene without the labels this colour mode needs
        raise PcsegError(f"{args.scene}: {e}") from None
    out = args.out
    if window:
        viewer = SceneViewer(lambda i: ViewerItem(scene, pred), 1, mode=args.color,
                             side_by_side=args.side_by_side, view=args.view,
                             size=(args.width, args.height), title=f"pcseg viz: {scene.name}")
        if viewer.run():
            return
        out = f"{scene.name}_{args.color}.png"
        print(f"no usable display (DISPLAY={os.environ.get('DISPLAY', '')!r}): "
              f"rendering to {out} instead of opening a window")
    image = render_panels(scene, panels, args.color, size=(args.width, args.height), view=args.view,
                          shown=semantic_shown(scene, pred, args.side_by_side) if args.color == "semantic" else None)
    print(f"wrote {save_png(image, out)}")


def _cmd_train(args) -> None:
    from .pipelines import load_recipe, resume_recipe, train_recipe

    pipeline, recipe = load_recipe(args.config, args.overrides)  # the recipe's `pipeline:` key picks the trainer
    if args.resume:  # the stored recipe, not the YAML file's (which may have changed since)
        recipe = resume_recipe(pipeline, recipe, [o for o in args.overrides if not o.startswith("pipeline=")])
    train_recipe(pipeline, recipe, resume=args.resume, progress=not args.quiet)
    from .engine.distributed import launched_by_torchrun

    if launched_by_torchrun():
        _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End a torchrun process whose work is written. torch's DDP keeps the gloo process group's threads
    alive past destroy_process_group, and tearing the interpreter down around them aborted a rank now and
    then ("terminate called without an active exception", exit -6, after model.pt was written)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _cmd_predict(args) -> None:
    from .pipelines import predict_to_folder

    totals = predict_to_folder(args.input, args.out, checkpoint=args.checkpoint, device=args.device,
                               overrides=args.overrides, progress=not args.quiet,
                               save_embeddings=args.save_embeddings, skip_bad=args.skip_bad, up=args.up,
                               masks=args.masks)
    n = max(totals["scenes"], 1)
    print(f"predicted {totals['scenes']} scene(s) into {args.out}")
    stages = [k for k in ("read", "network", "cluster", "lift_fuse", "superpoints", "snap", "merge", "write") if k in totals]
    print("seconds per scene: " + ", ".join(f"{k} {totals[k] / n:.3f}" for k in stages)
          + (f"; {totals['wall'] / n:.3f} wall (grouping and writing overlap the next scene's network)"
             if "wall" in totals else ""))
    if totals.get("blocks"):  # scans wider than a block (engine.tiling)
        print(f"scans wider than tile_size={totals['tile_size']:g} m were predicted in {totals['blocks']:.0f} "
              f"overlapping blocks")
    if totals.get("frames"):  # the 2D pipeline: the network runs once per frame
        print(f"network per frame: {totals['network'] / totals['frames']:.3f} s over {totals['frames']} frames")
    if Path(args.input).is_dir() and _has_scannet_scenes(args.input):
        print(f"score it: pcseg data export-gt --scannet {args.input} --out GT_DIR (the official GT files), then "
              f"pcseg eval --gt GT_DIR --pred {args.out}")
    else:  # a user's own clouds: no annotation to score against
        print(f"look at it: pcseg viz CLOUD --pred {args.out}")


def _has_scannet_scenes(path) -> bool:
    from .io.scannet import list_scenes

    try:
        return bool(list_scenes(path))
    except PcsegError:
        return False


def _cmd_demo(args) -> None:
    from .apps.demo import run_demo

    run_demo(args.config, args.overrides)


def _cmd_compare(args) -> None:
    from .apps.compare import run_compare

    run_compare(args.config, args.overrides, progress=not args.quiet)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _common_options(parser: argparse.ArgumentParser, default) -> None:
    """Options every command takes, before or after the command's name."""
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False), help="no progress bars")
    parser.add_argument("--threads", type=_positive_int, default=default(None), metavar="N",
                        help="CPU threads (default: all usable cores; wins over a recipe's threads key)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="pcseg", description="3D point-cloud instance segmentation of indoor scenes.")
    parser.add_argument("--version", action="version", version=f"pcseg {__version__}")
    _common_options(parser, lambda value: value)
    common = argparse.ArgumentParser(add_help=False)
    # after the command name they only override what was given before it
    _common_options(common, lambda value: argparse.SUPPRESS)

    def command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], **kwargs)  # every command takes them

    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="generate and convert datasets").add_subparsers(dest="data_command", required=True)
    p = command(data, "synth", help="write synthetic ScanNet-format rooms")
    p.add_argument("--out", required=True, help="dataset root to create (scans/, labels tsv, split files)")
    p.add_argument("--scenes", type=_positive_int, default=10, help="number of rooms (default 10)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--frames", type=_non_negative_int, default=0, help="RGB-D frames per room (default 0)")
    p.add_argument("--workers", type=_positive_int, default=None, help="processes (default: 2, at most the CPUs)")
    p.add_argument("--domain", choices=("standard", "shifted"), default="standard",
                   help="shifted: colour casts, noise, holes and unannotated clutter that training never sees "
                        "(a test of what a model memorised)")
    p.set_defaults(func=_cmd_data_synth)
    p = command(data, "segment", help="compute superpoints of a scan and write them as a ScanNet segs.json")
    p.add_argument("input", help="a scene folder or a point cloud (.ply, .npz, .pcd, .las, .laz)")
    p.add_argument("--out", required=True, help="segs.json to write (for a scene folder: <scene>_vh_clean_2.0.010000.segs.json "
                   "inside it makes pcseg use it)")
    p.add_argument("--threshold", type=_non_negative_float, default=None,
                   help="Felzenszwalb-Huttenlocher k: larger, larger superpoints (default 0.05)")
    p.add_argument("--min-size", type=_positive_int, default=None, help="smallest superpoint in points (default 20)")
    p.add_argument("--color-weight", type=_non_negative_float, default=None,
                   help="weight of colour differences beside normal differences (default 1.5; 0: geometry only)")
    p.set_defaults(func=_cmd_data_segment)
    p = command(data, "export-gt", help="write the official instance GT .txt of every scene")
    p.add_argument("--scannet", required=True, help="ScanNet root (with scans/) or a folder of scene folders")
    p.add_argument("--out", required=True, help="folder for <scene>.txt files")
    p.add_argument("--labels", default=None, help="scannetv2-labels.combined.tsv (default: beside scans/)")
    p.add_argument("--split", default=None, help="only scenes of this split, e.g. val (reads scannetv2_<split>.txt)")
    p.set_defaults(func=_cmd_data_export_gt)
    p = command(data, "export-coco", help="write the RGB-D frames' instances as COCO JSON (RLE masks)")
    p.add_argument("dataset", help="ScanNet-layout root (scans/<id>/frames/) or a folder of scene folders")
    p.add_argument("--out", required=True, help="COCO instances .json to write")
    p.add_argument("--split", default=None, help="only scenes of this split, e.g. val (reads scannetv2_<split>.txt)")
    p.add_argument("--frames-dir", default="frames", help="frame folder inside each scene folder (default frames)")
    p.add_argument("--step", type=_positive_int, default=1, help="every N-th frame (default 1)")
    p.add_argument("--images", default=None,
                   help="folder for colour images resampled onto the depth grid (needed when colour and depth differ)")
    p.set_defaults(func=_cmd_data_export_coco)

    p = command(sub, "eval", help="score instance predictions with the official ScanNet v2 protocol")
    p.add_argument("--gt", required=True, help="folder of official GT <scene>.txt files")
    p.add_argument("--pred", required=True, help="folder of official instance predictions")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.add_argument("--missing", choices=("skip", "miss"), default="skip",
                   help="GT scenes without a prediction file: skip them (official) or count all missed")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write an HTML + Markdown report here (tables, PR curves, AP chart, scene renders)")
    p.add_argument("--scenes", default=None, metavar="DATASET_ROOT",
                   help="ScanNet-layout dataset (DATASET_ROOT/scans/<scene>/) to render the best and worst "
                        "scenes in the report (without it: no renders)")
    p.set_defaults(func=_cmd_eval)

    p = command(sub, "viz", help="look at a scene (window, or PNG when headless or with --out)")
    p.add_argument("scene", help="ScanNet scene folder, .ply, .npz, .pcd, .las or .laz")
    p.add_argument("--pred", default=None, help="prediction folder (`pcseg predict`) to show instead of GT")
    p.add_argument("--color", choices=("rgb", "semantic", "instance", "embedding", "errors"), default="instance",
                   help="errors and embedding need --pred (embedding: predicted with --save-embeddings)")
    p.add_argument("--out", default=None, help="PNG to write (default: open a window when a display exists)")
    p.add_argument("--view", choices=("oblique", "top", "fitted"), default="oblique", help="camera preset")
    p.add_argument("--side-by-side", action="store_true",
                   help="ground truth next to the prediction (and errors / embeddings) in one view")
    p.add_argument("--frame", type=_non_negative_int, default=None, metavar="N",
                   help="instead: RGB-D frame N of the scene folder's frames/ with its masks overlaid (PNG)")
    p.add_argument("--labels", default=None, help="labels tsv for a ScanNet folder")
    p.add_argument("--up", choices=UP_AXES, default="z",
                   help="a plain cloud's up axis (phone and photogrammetry exports are often y-up); auto: estimated "
                        "from the floor and walls, and turned to a heading its walls fix")
    p.add_argument("--width", type=_positive_int, default=1280)
    p.add_argument("--height", type=_positive_int, default=960)
    p.set_defaults(func=_cmd_viz)

    p = command(sub, "train", help="train a model from a YAML recipe (see configs/)")
    p.add_argument("config", help="YAML recipe, e.g. configs/synthetic_bottomup.yaml or configs/maskrcnn2d_synthetic.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides of recipe keys")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    p.set_defaults(func=_cmd_train)

    p = command(sub, "predict", help="predict instances; writes the official submission format")
    p.add_argument("--input", required=True, help="ScanNet scene folder, a folder of them, or a .ply/.npz/.pcd/.las/.laz (or a folder of those)")
    p.add_argument("--out", required=True, help="prediction folder to create")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped synthetic model)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    # accepted so that older command lines still run: prediction reads no annotation
    p.add_argument("--labels", default=None, help=argparse.SUPPRESS)
    p.add_argument("--save-embeddings", action="store_true",
                   help="also write embeddings/<scene>.npy (float16 [N, D]) for `pcseg viz --color embedding`")
    p.add_argument("--up", choices=UP_AXES, default="z",
                   help="the plain clouds' up axis, turned to +z for the network (phone and photogrammetry "
                        "exports are often y-up; auto: estimated from the floor and walls, with a note saying what "
                        "was found, and the cloud turned about the vertical to a heading its walls fix, so that any "
                        "orientation of a room predicts alike); the files written are per point")
    p.add_argument("--masks", choices=("auto", "files", "compact"), default="auto",
                   help="instance masks as the official per-instance files (files), as pcseg's one "
                        "instances/<scene>.npz of point indices (compact: its size grows with the points, not "
                        "points x instances), or files unless they would pass 200 MB for a scene, e.g. a "
                        "building floor (auto, the default); pcseg eval and viz read both")
    p.add_argument("--skip-bad", action="store_true",
                   help="predict the readable inputs and name the others (default: stop before any network run)")
    p.add_argument("overrides", nargs="*", help="clustering overrides, e.g. cluster_method=hdbscan bandwidth=0.5")
    p.set_defaults(func=_cmd_predict)

    p = command(sub, "demo", help="the main job on built-in synthetic data: generate, predict, evaluate")
    p.add_argument("config", nargs="?", default=None, help="YAML recipe (default configs/demo.yaml values)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(func=_cmd_demo)

    p = command(sub, "compare", help="run every pipeline (3D, 2D lifted, baselines) on the same scenes: one table")
    p.add_argument("config", help="YAML config, e.g. configs/compare_synthetic.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(func=_cmd_compare)
    return parser


def _exit_cleanly_on_termination() -> dict:
    """SIGTERM and SIGHUP raise SystemExit like Ctrl-C raises KeyboardInterrupt, so that the cleanup of
    unfinished outputs runs (by default they end the process on the spot). Returns the previous handlers."""
    import signal

    def stop(signum, frame):
        print(f"pcseg: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            try:
                previous[getattr(signal, name)] = signal.signal(getattr(signal, name), stop)
            except ValueError:  # not the main thread (main() called from a thread): leave it
                pass
    return previous


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` ran, for its own usage line in errors."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _command_parser(action.choices[name], args)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and hasattr(args, "overrides") and all("=" in u and not u.startswith("-") for u in unknown):
        args.overrides.extend(unknown)  # key=value after an option (`train CFG --resume max_minutes=90`)
        unknown = []
    if unknown:  # named by the command's own usage, not the top-level one
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "demo" and args.config and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = None
    previous_handlers = _exit_cleanly_on_termination()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        if args.threads is not None:  # before any work; without it each command applies its recipe's or the default
            from .runtime import set_threads

            set_threads(args.threads)
        args.func(args)
    except PcsegError as e:
        print(f"pcseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcseg: interrupted", file=sys.stderr)
        return 130
    finally:
        import signal

        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

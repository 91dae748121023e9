#!/usr/bin/env python
"""The GPU paths of pcseg, run for real: one script for a machine with a CUDA GPU.

    python benchmarks/gpu_check.py --data DIR --out DIR [--steps env,tests,...] [--budget-s 480]

``--data`` holds ``rooms/`` (a ScanNet-layout dataset of synthetic rooms, as ``pcseg data synth``
writes it) and ``frames/`` (the same with RGB-D frames, for the 2D baseline); without it they are
generated under ``--out`` (that needs Open3D). ``benchmarks/gpu_prepare.sh`` packs the data and the
wheels a GPU user installs (spconv's CUDA build) for a machine without network access, and
``benchmarks/gpu_device_run.sh`` unpacks them there and runs this script.

Steps, each recorded in ``<out>/gpu_check.json`` as soon as it ends (a step that fails records its
error and the others still run; steps that no longer fit into ``--budget-s`` are skipped):

* env        torch / CUDA / GPU / spconv / torchvision versions; fp32 and bf16 matmul rates of the GPU
             and the 1-thread fp32 rate of the CPU (machines differ: every time is read beside them)
* tests      the test suite's ``cuda``-marked tests (they skip on a CPU)
* backends   the shipped checkpoint on 3 rooms: CPU + torch backend (the reference), CUDA + torch,
             CUDA + spconv; per-point agreement of classes and instances, and AP of each
* predict    ``predict_to_folder`` on the 10 rooms and on one 240k-point scan: seconds per stage
             (network, cluster, snap, write), per 100k points, end to end, and peak GPU memory; the
             same rooms on this machine's CPU for the ratio; ``pcseg predict --device cuda`` as a
             user runs it (process start and model load included)
* train      ``pcseg train configs/synthetic_bottomup.yaml`` with ``device=cuda`` for a few minutes:
             points/s (beside the same recipe on this machine's CPU), then ``--resume`` from its
             checkpoint
* maskrcnn2d a few Mask R-CNN training steps on CUDA and ``pcseg predict`` with that 2D checkpoint
* ddp        ``torchrun --nproc_per_node 1`` with the nccl backend for a few steps

Without a CUDA device it says so in one line and dry-runs every step on the CPU with short budgets.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
STEPS = ("env", "tests", "backends", "predict", "train", "maskrcnn2d", "ddp")
# seconds each step needs at most on the GPU (with --train-minutes 1.5): a step starts only if it fits
NEEDS = {"env": 20, "tests": 150, "backends": 90, "predict": 120, "train": 240, "maskrcnn2d": 120, "ddp": 60}


class Check:
    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.gpu = torch.cuda.is_available()
        self.device = "cuda" if self.gpu else "cpu"
        # the JSON and the log go to --results as each step ends (a machine taken back keeps what was written)
        results = Path(args.results).resolve() if args.results else self.out
        results.mkdir(parents=True, exist_ok=True)
        tag = args.steps.replace(",", "_")
        self.log = open(results / (f"gpu_check_{tag}.log" if args.results else "gpu_check.log"), "a")
        self.json_path = results / (f"gpu_check_{tag}.json" if args.results else "gpu_check.json")
        self.results: dict = {"gpu": self.gpu, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": {}}
        self.deadline = time.monotonic() + args.budget_s
        self.data = Path(args.data).resolve() if args.data else self.out / "data"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "PYTHONUNBUFFERED": "1"}

    # --- plumbing ---------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def save(self) -> None:
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1, default=float))
        tmp.replace(self.json_path)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list[str], timeout: float) -> dict:
        """A command in a subprocess, its output into the log; rc, seconds, the output's tail."""
        timeout = max(5.0, min(timeout, self.left()))
        self.say(f"$ {' '.join(map(str, cmd))}   (timeout {timeout:.0f} s)")
        start = time.perf_counter()
        try:
            proc = subprocess.run(list(map(str, cmd)), cwd=ROOT, env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
            rc, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:  # its output may come as bytes even with text=True
            rc = "timeout"
            out = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x for x in (e.stdout, e.stderr) if x)
        seconds = time.perf_counter() - start
        self.log.write(f"--- {name}: rc {rc}, {seconds:.1f} s ---\n{out}\n")
        self.log.flush()
        return {"rc": rc, "seconds": round(seconds, 2), "tail": out[-1500:]}

    def pcseg(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pcseg", *args]

    # --- data ---------------------------------------------------------------------------------------

    def need(self, name: str) -> Path:
        """``<data>/rooms`` or ``<data>/frames``, generated with ``pcseg data synth`` if missing (needs Open3D)."""
        extra = {"rooms": ["--scenes", "10", "--seed", "1"], "frames": ["--scenes", "3", "--seed", "2", "--frames", "6"]}
        if not (self.data / name / "scans").is_dir():
            self.say(f"generating {self.data / name} (pcseg data synth)")
            r = self.run(f"synth {name}", self.pcseg("-q", "data", "synth", "--out", self.data / name, *extra[name]), 600)
            if r["rc"] != 0:
                raise RuntimeError(f"could not generate {self.data / name}: {r['tail']}")
        return self.data / name

    def rooms(self, count: int | None = None) -> list[Path]:
        from pcseg.io.scannet import list_scenes

        return list_scenes(self.need("rooms"))[:count]

    def folder_of(self, name: str, scenes: list[Path]) -> Path:
        """A dataset folder holding (links to) ``scenes``, with the labels table beside."""
        root = self.out / name
        shutil.rmtree(root, ignore_errors=True)
        (root / "scans").mkdir(parents=True)
        for s in scenes:
            (root / "scans" / s.name).symlink_to(s)
        shutil.copy(self.data / "rooms" / "scannetv2-labels.combined.tsv", root)
        return root

    def score(self, dataset: Path, pred: Path) -> dict:
        from pcseg.evaluation.folders import evaluate_folders
        from pcseg.io.export import export_gt

        gt = dataset.parent / f"{dataset.name}_gt"
        if not gt.is_dir():
            export_gt(dataset, gt, progress=False)
        r = evaluate_folders(gt, pred, progress=False)
        return {k: round(float(r[k]), 4) for k in ("AP", "AP50", "AP25")}

    # --- steps --------------------------------------------------------------------------------------

    def step_env(self) -> dict:
        from bench_busy import matmul_rate

        from pcseg.sparse import backend as selection

        info = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                "cpu_cores": os.cpu_count(), "cpu_fp32_gflops_1thread": round(matmul_rate(), 1)}
        try:
            import torchvision
            info["torchvision"] = torchvision.__version__
        except ImportError as e:
            info["torchvision"] = f"missing ({e})"
        try:
            import spconv
            info["spconv"] = getattr(spconv, "__version__", "?")
            info["spconv_cuda"] = selection._spconv_has_cuda()
        except Exception as e:  # noqa: BLE001 - any import failure is a finding
            info["spconv"] = f"not usable ({type(e).__name__}: {e})"
        if self.gpu:
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                        multiprocessors=p.multi_processor_count)
            for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
                a = torch.randn(4096, 4096, device="cuda", dtype=dtype)
                for _ in range(3):
                    a @ a
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(10):
                    a @ a
                torch.cuda.synchronize()
                info[f"gpu_{label}_tflops"] = round(10 * 2 * 4096 ** 3 / (time.perf_counter() - start) / 1e12, 1)
        return info

    def step_tests(self) -> dict:
        files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                       if "mark.cuda" in p.read_text())
        r = self.run("cuda tests", [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "cuda",
                                    *files], 240)
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", r["tail"])}
        return {"files": files, **counts, **r}

    def step_backends(self) -> dict:
        from pcseg.pipelines import predict_to_folder
        from pcseg.sparse import backend as selection

        dataset = self.folder_of("backends_rooms", self.rooms(3))
        runs = [("cpu", "torch")]
        if self.gpu:
            runs.append(("cuda", "torch"))
            if selection.is_importable("spconv") and selection._spconv_has_cuda():
                runs.append(("cuda", "spconv"))
        elif selection.is_importable("spconv"):
            runs.append(("cpu", "spconv"))  # the dry-run: spconv's CPU wheel, one thread
        out: dict = {"rooms": 3, "runs": {}}
        ref = None
        for device, backend in runs:
            pred = self.out / f"backends_{device}_{backend}"
            shutil.rmtree(pred, ignore_errors=True)
            overrides = [f"backend={backend}"] + (["threads=1"] if (device, backend) == ("cpu", "spconv") else [])
            predict_to_folder(dataset, pred, device=device, overrides=overrides, progress=False)  # warm-up
            shutil.rmtree(pred)
            totals = predict_to_folder(dataset, pred, device=device, overrides=overrides, progress=False)
            row = {"network_s_per_room": round(totals["network"] / 3, 4), **self.score(dataset, pred)}
            if ref is None:
                ref = pred
            else:
                row.update(agreement(ref, pred))
            out["runs"][f"{device}+{backend}"] = row
            self.say(f"  {device}+{backend}: {row}")
        return out

    def step_predict(self) -> dict:
        from bench_predict_folder import real_sized_scan

        from pcseg.io import read_scene
        from pcseg.io.scannet import read_scannet_scene, write_scannet_scene
        from pcseg.pipelines import predict_to_folder

        rooms = self.folder_of("predict_rooms", self.rooms(10))
        points = sum(len(read_scene(p, labels=False)) for p in self.rooms(10))
        big = self.out / "predict_big"
        if not (big / "scans").is_dir():  # 4 rooms side by side: a 240k-point scan, segments as fine as ScanNet's
            scan = real_sized_scan([read_scannet_scene(p) for p in self.rooms(4)], "scene0900_00",
                                   np.random.default_rng(0))
            write_scannet_scene(scan, big / "scans" / scan.name)
            shutil.copy(self.data / "rooms" / "scannetv2-labels.combined.tsv", big)

        def timed(folder: Path, n_points: int, device: str, tag: str, overrides=()) -> dict:
            pred = self.out / f"predict_{tag}"
            shutil.rmtree(pred, ignore_errors=True)
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            totals = predict_to_folder(folder, pred, device=device, overrides=list(overrides), progress=False)
            n = totals["scenes"]
            row = {f"{k}_s_per_scene": round(totals[k] / n, 4)
                   for k in ("read", "network", "cluster", "snap", "write", "wall") if k in totals}
            row["wall_s_per_100k_points"] = round(totals["wall"] / (n_points / 1e5), 4)
            if device == "cuda":
                row["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            row.update(self.score(folder, pred))
            self.say(f"  {tag}: {row}")
            return row

        out: dict = {"rooms": 10, "points_per_room": int(points / 10)}
        predict_to_folder(self.folder_of("predict_warmup", self.rooms(1)), self.out / "predict_warmup_pred",
                          device=self.device, progress=False)  # CUDA context, kernels, allocator
        out["rooms_" + self.device] = timed(rooms, points, self.device, f"rooms_{self.device}")
        from pcseg.sparse import backend as selection
        if self.gpu and selection.resolve_backend("auto", "cuda") == "spconv":
            out["rooms_cuda_torch_backend"] = timed(rooms, points, "cuda", "rooms_cuda_torch", ["backend=torch"])
        out["scan240k_" + self.device] = timed(big, 240_000, self.device, f"big_{self.device}")
        if self.gpu:  # the same rooms on this machine's CPU, for the ratio
            out["rooms_cpu"] = timed(rooms, points, "cpu", "rooms_cpu")
            out["speedup_gpu_over_cpu"] = round(out["rooms_cpu"]["wall_s_per_scene"]
                                                / out["rooms_cuda"]["wall_s_per_scene"], 2)
        cli = self.out / "predict_cli"
        shutil.rmtree(cli, ignore_errors=True)
        r = self.run("pcseg predict", self.pcseg("predict", "--device", self.device, "--input", rooms, "--out", cli), 180)
        out["cli"] = {"rc": r["rc"], "seconds_end_to_end": r["seconds"],
                      "printed": [ln for ln in r["tail"].splitlines() if ln.startswith(("predicted", "seconds"))]}
        return out

    def train_args(self, out_dir: Path, device: str, minutes: float) -> list[str]:
        rooms = self.need("rooms")
        return [f"data_root={rooms}", "train_split=all", "synth_scenes=0", f"val_root={rooms}", "val_split=all",
                "val_synth_scenes=0", "val_scenes=3", f"device={device}", f"max_minutes={minutes}",
                f"out_dir={out_dir}", "val_every=0", "checkpoint_every=20", "log_every=1"]

    def step_train(self) -> dict:
        minutes = self.args.train_minutes if self.gpu else 0.3
        recipe = "configs/synthetic_bottomup.yaml"
        run_dir = self.out / "train_gpu"
        shutil.rmtree(run_dir, ignore_errors=True)
        first = self.run("train", self.pcseg("-q", "train", recipe, *self.train_args(run_dir, self.device, minutes)),
                         minutes * 60 + 150)
        out: dict = {"minutes": minutes, "device": self.device, "train": {**first, **rate(run_dir)}}
        self.say(f"  train: rc {first['rc']}, {rate(run_dir)}")
        steps_before = out["train"].get("steps", 0)
        resumed = self.run("train --resume", self.pcseg("-q", "train", recipe, "--resume",
                                                        f"out_dir={run_dir}", f"max_minutes={minutes + 0.5}"), 150)
        after = rate(run_dir)
        out["resume"] = {**resumed, **after, "continued": after.get("steps", 0) > steps_before}
        self.say(f"  resume: rc {resumed['rc']}, steps {steps_before} -> {after.get('steps')}")
        if self.gpu:  # the same recipe on this machine's CPU for the ratio
            cpu_dir = self.out / "train_cpu"
            shutil.rmtree(cpu_dir, ignore_errors=True)
            r = self.run("train cpu", self.pcseg("-q", "train", recipe, *self.train_args(cpu_dir, "cpu", 0.5)), 150)
            out["cpu"] = {"rc": r["rc"], **rate(cpu_dir)}
            if out["cpu"].get("points_per_s") and out["train"].get("points_per_s"):
                out["speedup_gpu_over_cpu"] = round(out["train"]["points_per_s"] / out["cpu"]["points_per_s"], 1)
        return out

    def step_maskrcnn2d(self) -> dict:
        frames = self.need("frames")
        run_dir = self.out / "maskrcnn2d"
        shutil.rmtree(run_dir, ignore_errors=True)
        minutes = 0.5 if self.gpu else 0.3
        r = self.run("train 2d", self.pcseg(
            "-q", "train", "configs/maskrcnn2d_synthetic.yaml", f"data_root={frames}", "train_split=all",
            "synth_scenes=0", f"val_root={frames}", "val_split=all", "val_synth_scenes=0", f"device={self.device}",
            f"max_minutes={minutes}", "epochs=20", "val_every=0", "val_frames=6", "warmup_steps=5",
            "checkpoint_every=20", f"out_dir={run_dir}", "log_every=1"), minutes * 60 + 150)
        out: dict = {"train": {**r, **rate(run_dir, key=None)}}
        self.say(f"  2D train: rc {r['rc']}, {rate(run_dir, key=None)}")
        pred = self.out / "maskrcnn2d_pred"
        shutil.rmtree(pred, ignore_errors=True)
        p = self.run("predict 2d", self.pcseg("predict", "--checkpoint", run_dir / "model.pt", "--device", self.device,
                                              "--input", frames, "--out", pred), 180)
        out["predict"] = {"rc": p["rc"], "seconds_end_to_end": p["seconds"],
                          "printed": [ln for ln in p["tail"].splitlines()
                                      if ln.startswith(("predicted", "seconds", "network per frame"))]}
        return out

    def step_ddp(self) -> dict:
        run_dir = self.out / "ddp"
        shutil.rmtree(run_dir, ignore_errors=True)
        args = [a for a in self.train_args(run_dir, self.device, 0.3) if not a.startswith("max_minutes")]
        r = self.run("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                                  "-m", "pcseg", "train", "configs/synthetic_bottomup.yaml", *args, "epochs=1"], 150)
        backend = re.search(r"DDP over (\w+)", r["tail"])
        return {**r, "ddp_backend": backend.group(1) if backend else None, **rate(run_dir)}

    # --- main ---------------------------------------------------------------------------------------

    def main(self) -> int:
        steps = [s for s in self.args.steps.split(",") if s]
        unknown = sorted(set(steps) - set(STEPS))
        if unknown:
            raise SystemExit(f"gpu_check: unknown step(s) {unknown}; the steps: {', '.join(STEPS)}")
        if not self.gpu:
            self.say(f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda}, "
                     "torch.cuda.is_available() is False): CPU dry-run of every step, with short budgets")
        for name in steps:
            need = NEEDS[name] if self.gpu else 0
            if self.left() < need:
                self.results["steps"][name] = {"status": "skipped", "why": f"{self.left():.0f} s left, needs {need}"}
                self.say(f"== {name}: skipped ({self.left():.0f} s left)")
                self.save()
                continue
            self.say(f"== {name} ({self.left():.0f} s left)")
            start = time.perf_counter()
            try:
                result = {"status": "ok", **getattr(self, f"step_{name}")()}
            except Exception as e:  # noqa: BLE001 - a failing step is a finding; the others still run
                result = {"status": "error", "error": f"{type(e).__name__}: {e}",
                          "traceback": traceback.format_exc()[-3000:]}
                self.say(result["traceback"])
            result["step_seconds"] = round(time.perf_counter() - start, 1)
            self.results["steps"][name] = result
            self.save()
            self.say(f"== {name}: {result['status']} in {result['step_seconds']} s")
        self.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.save()
        bad = [n for n, r in self.results["steps"].items() if r.get("status") != "ok"
               or r.get("rc", 0) not in (0,) or r.get("failed") or r.get("errors")]
        self.say(f"wrote {self.json_path}; steps not clean: {bad or 'none'}")
        return 1 if bad else 0


def rate(run_dir: Path, key: str | None = "points_per_s") -> dict:
    """The last step logged in ``run_dir/metrics.jsonl``, whether the logged steps strictly increase
    (a resumed run continues where it stopped), and the median of ``key`` after the first 3 steps."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {"steps": 0}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "lr" in r]  # training records (validation records have no lr)
    numbers = [r["step"] for r in steps]
    out: dict = {"steps": max(numbers, default=0), "steps_increasing": all(a < b for a, b in zip(numbers, numbers[1:]))}
    values = [r[key] for r in steps[3:] if key and key in r]
    if values:
        out[key] = round(float(np.median(values)), 1)
    return out


def agreement(ref: Path, pred: Path) -> dict:
    """Per-point agreement of two prediction folders: semantic labels, and instances (the share of
    points whose instance in ``pred`` is the one that best overlaps their instance in ``ref``)."""
    same_sem, same_inst, n, counts = 0, 0, 0, []
    for f in sorted((ref / "semantic").glob("*.txt")):
        a, b = np.loadtxt(f, dtype=np.int64), np.loadtxt(pred / "semantic" / f.name, dtype=np.int64)
        ia = np.loadtxt(ref / "instance_ids" / f.name, dtype=np.int64)
        ib = np.loadtxt(pred / "instance_ids" / f.name, dtype=np.int64)
        same_sem += int((a == b).sum())
        pairs, count = np.unique(np.stack([ia, ib], 1), axis=0, return_counts=True)
        best: dict = {}
        for (x, y), c in zip(pairs.tolist(), count.tolist()):
            if c > best.get(x, (None, -1))[1]:
                best[x] = (y, c)
        same_inst += sum(c for _, c in best.values())
        n += len(a)
        counts.append((len(np.unique(ia[ia > 0])), len(np.unique(ib[ib > 0]))))
    return {"semantic_agreement": round(same_sem / max(n, 1), 5), "instance_agreement": round(same_inst / max(n, 1), 5),
            "instances_ref_vs_this": counts}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="folder with rooms/ and frames/ (default: generate under --out)")
    p.add_argument("--out", default="out/gpu_check", help="results, log and work files (default out/gpu_check)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, from {','.join(STEPS)}")
    p.add_argument("--results", default=None, help="write gpu_check_<steps>.json / .log here instead of --out")
    p.add_argument("--budget-s", type=float, default=480, help="skip the steps that no longer fit (default 480)")
    p.add_argument("--train-minutes", type=float, default=1.5, help="the GPU training run's budget (default 1.5)")
    return Check(p.parse_args()).main()


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: one training epoch on data 1x, 4x and 16x a base size, streamed from disk or held in memory, and
the memory each run's process takes; the largest streamed runs again inside a memory limit smaller than the data.

    python bench/data_scale.py                              # full: base 25,000 rows (16x: 1.26 GB), limit 1000 MB
    python bench/data_scale.py --quick --out /tmp/ds.json   # smoke test: 2,000 rows (folders 500), no limit

Data (made once under ``--work``): MNIST-like 28 x 28 grey digits, the 5,000 embedded ones tiled with random
shifts of up to 2 pixels and noise on the strokes, as (a) an ``.npy`` of float32 (N, 1, 28, 28) with a fixed test
part of ``--test-rows`` (``--test-fraction`` is set to give it) and (b) an image folder (PNG, ``train/`` and
``test/``; its base is ``--folder-base``, smaller, since PNG files are slow to write). Each case is one
``vae train --epochs 1`` in a child process: ``--stream never`` (in memory) or ``always`` (an ``.npy`` through a
memory map, or PNGs decoded in ``--workers`` DataLoader processes). The files' pages are evicted from the page
cache (``posix_fadvise DONTNEED``) before each case, so every case starts cold and a limited one reads its data
into its own memory cgroup.

Measured per case: ``peak_rss_mb``, the kernel's peak resident set of the training process (``ru_maxrss`` from
``os.wait4`` on that child: the largest process of its tree, read also when it was killed); ``tree_peak_rss_mb``,
the largest sum of ``VmRSS`` over the child and its descendants (the DataLoader workers), sampled every 0.2 s (an
upper bound: pages shared by forked workers count once per process); ``images_per_s`` = training rows / the
epoch's ``seconds`` in the run's ``metrics.jsonl`` (the training loop alone, not start-up or evaluation); wall time.
The limit: a fresh cgroup v1 memory group (``memory.limit_in_bytes``) beside this process's, or else cgroup v2
(``memory.max``), that the child joins before exec; none (``"limit": null`` with the reason) when neither can be
written. A child killed by it (rc 137) is recorded as failed. ``control`` runs the largest array in memory under the
limit: it should be killed, showing the limit binds. Ratios (streamed / in memory at 1x, RSS 16x / 1x) come from
this one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_vae.inference.data.datasets import load_embedded_mnist
from pyro_vae.inference.data.folders import write_image_folder
from pyro_vae.inference.runs.files import write_json

SCALES = (1, 4, 16)
ROW_BYTES = 4 * 28 * 28  # one image as float32


def digits() -> np.ndarray:
    """The 5,000 embedded digits as uint8 (5000, 28, 28)."""
    data = load_embedded_mnist()
    return (torch.cat([data.train_x, data.test_x])[:, 0] * 255).round().to(torch.uint8).numpy()


def make_images(base: np.ndarray, start: int, n: int, seed: int = 0) -> np.ndarray:
    """Rows start..start+n of the tiled set (uint8 (n, 1, 28, 28)): digit ``i % 5000`` shifted and noised."""
    rng = np.random.default_rng([seed, start])
    x = base[(start + np.arange(n)) % len(base)].astype(np.int16)
    shifts = rng.integers(-2, 3, size=(n, 2))
    for dy, dx in {tuple(s) for s in shifts.tolist()}:
        rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
        x[rows] = np.roll(x[rows], (dy, dx), axis=(1, 2))
    x += rng.integers(-24, 25, size=x.shape, dtype=np.int16) * (x > 0)
    return np.clip(x, 0, 255).astype(np.uint8)[:, None]


def write_array(work: Path, base: np.ndarray, n: int) -> Path:
    path = work / f"array_{n}.npy"
    if not path.exists():  # written under another name, then renamed: an existing file is complete
        part = path.with_suffix(".part")
        out = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(n, 1, 28, 28))
        for s in range(0, n, 8192):
            out[s:s + 8192] = make_images(base, s, min(8192, n - s)) / np.float32(255)
        out.flush()
        del out
        part.rename(path)
    return path


def write_folder(work: Path, base: np.ndarray, n_train: int, n_test: int) -> Path:
    folder = work / f"folder_{n_train}+{n_test}"
    if not (folder / ".complete").exists():
        images = make_images(base, 0, n_train + n_test)
        write_image_folder(folder / "test", images[:n_test])
        write_image_folder(folder / "train", images[n_test:])
        (folder / ".complete").touch()
    return folder


def evict(path: Path) -> None:
    """Drop the file's (or the folder's files') clean pages from the page cache."""
    for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def memory_group(limit_mb: int, name: str) -> tuple[Path | None, str]:
    """A fresh memory cgroup limited to ``limit_mb`` beside this process's (v1, else v2): (its folder, how), or
    (None, why not)."""
    errors = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, where = line.split(":", 2)
        if "memory" in controllers.split(","):
            root, knob = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        elif controllers == "":
            root = Path("/sys/fs/cgroup")
            root, knob = root if (root / "cgroup.controllers").exists() else root / "unified", "memory.max"
        else:
            continue
        group = root / where.lstrip("/") / name
        try:
            group.mkdir()
            (group / knob).write_text(str(limit_mb * 2 ** 20))
            return group, f"{'cgroup v1' if knob == 'memory.limit_in_bytes' else 'cgroup v2'}: {group / knob}"
        except OSError as err:
            errors.append(f"{group / knob}: {err}")
            if group.exists():
                group.rmdir()
    return None, "; ".join(errors) or "no memory cgroup in /proc/self/cgroup"


def group_peak_mb(group: Path) -> float | None:
    for knob in ("memory.max_usage_in_bytes", "memory.peak"):  # v1, v2: page cache charged to it included
        if (group / knob).exists():
            return int((group / knob).read_text()) / 2 ** 20
    return None


def remove_group(group: Path) -> None:
    for _ in range(50):  # the workers of a killed child may take a moment to leave
        try:
            return group.rmdir()
        except OSError:
            time.sleep(0.1)
    print(f"could not remove {group}", file=sys.stderr)


def tree_rss_kb(pid: int) -> int:
    """Sum of VmRSS (KB) of ``pid`` and its descendants, now."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            pass  # gone meanwhile
    return total


def run_case(case: dict, data: Path, work: Path, args, limit_mb: int | None) -> dict:
    name = f"{case['kind']}-{'stream' if case['streamed'] else 'memory'}" + \
        (f"-w{case['workers']}" if case["workers"] is not None else "") + f"-{case['scale']}x" + \
        ("-limited" if limit_mb else "") + ("-control" if case.get("control") else "")
    run = work / "runs" / name
    cmd = [sys.executable, "-m", "pyro_vae.inference.cli", "train", "--dataset", case["kind"], "--data-dir", str(data),
           "--stream", "always" if case["streamed"] else "never", "--epochs", "1", "--compile", args.compile,
           "--device", "cpu", "--quiet", "--no-plots", "--no-tensorboard", "--out", str(run), "--force"]
    cmd += ["--test-fraction", repr(case["test_rows"] / case["file_rows"])] if case["kind"] == "array" else \
        ["--workers", str(case["workers"])]
    group, how = memory_group(limit_mb, f"bench-{os.getpid()}-{name}") if limit_mb else (None, None)
    evict(data)
    run.parent.mkdir(parents=True, exist_ok=True)
    start, tree = time.perf_counter(), 0
    with open(work / "runs" / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=(
            lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None)
        while not (done := os.wait4(proc.pid, os.WNOHANG))[0]:
            tree = max(tree, tree_rss_kb(proc.pid))
            time.sleep(0.2)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(done[1])
    proc.returncode = rc = code if code >= 0 else 128 - code  # 137: killed (SIGKILL), as a shell says
    row = {"case": name, **{k: case[k] for k in ("kind", "scale", "streamed", "workers", "data_bytes")},
           "rows": case["rows"], "test_rows": case["test_rows"], "limit_mb": limit_mb, "limit_applied": how,
           "peak_rss_mb": done[2].ru_maxrss / 1024, "tree_peak_rss_mb": tree / 1024, "wall_s": wall, "rc": rc,
           "images_per_s": None, "seconds": None, "steps": None, "control": bool(case.get("control"))}
    if group:
        row["limit_applied"] = how
        row["cgroup_peak_mb"] = group_peak_mb(group)
        remove_group(group)
    elif limit_mb:
        row["limit_mb"], row["limit_applied"] = None, f"not applied: {how}"
    if rc == 0:
        epoch = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        row["rows"] = json.loads((run / "data.json").read_text())["train"]
        row.update(seconds=epoch["seconds"], steps=epoch["steps"], images_per_s=row["rows"] / epoch["seconds"])
    else:
        lines = (work / "runs" / f"{name}.log").read_text().strip().splitlines()
        row["error"] = lines[-1] if lines else f"exit status {rc}, no output"
    return row


def ratio(rows: list[dict], num: dict, den: dict, key: str) -> float | None:
    pick = [next((r[key] for r in rows if all(r[k] == v for k, v in want.items()) and r["rc"] == 0), None)
            for want in (num, den)]
    return pick[0] / pick[1] if None not in pick else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=25_000, help="array rows at 1x (training rows)")
    parser.add_argument("--folder-base", type=int, default=5_000, help="image-folder rows at 1x")
    parser.add_argument("--test-rows", type=int, default=1_000, help="fixed test part of every array file")
    parser.add_argument("--folder-test-rows", type=int, default=500)
    parser.add_argument("--limit-mb", type=int, default=None, help="memory limit of the 16x streamed runs "
                        "(default 1000; 0: none); it should be below the 16x data and above a run's own needs")
    parser.add_argument("--compile", default="trace", help="vae train --compile (auto would pick inductor for "
                        "runs of 5,000 steps or more, its compilation then timed in that case's epoch)")
    parser.add_argument("--work", type=Path, default=None, help="data and runs (kept; default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke test: base 2000, folders 500, no limit")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.base, args.folder_base, args.test_rows, args.folder_test_rows = 2000, 500, 200, 100
    limit = args.limit_mb if args.limit_mb is not None else (0 if args.quick else 1000)
    out = args.out or Path(f"bench/results/data_scale_cpu{'_quick' if args.quick else ''}.json")
    temp = tempfile.TemporaryDirectory(prefix="data_scale-") if args.work is None else None
    work = Path(temp.name) if temp else args.work
    work.mkdir(parents=True, exist_ok=True)

    base, cases, started = digits(), [], time.perf_counter()
    for kind, n, n_test in (("array", args.base, args.test_rows), ("folder", args.folder_base, args.folder_test_rows)):
        for scale in SCALES:
            rows = scale * n
            path = write_array(work, base, rows + n_test) if kind == "array" else \
                write_folder(work, base, rows, n_test)
            common = {"kind": kind, "scale": scale, "rows": rows, "test_rows": n_test, "file_rows": rows + n_test,
                      "data_bytes": (rows + n_test) * ROW_BYTES, "path": path}
            streams = [(True, None)] if kind == "array" else [(True, 2), (True, 0)]
            for streamed, workers in ([(False, None if kind == "array" else 0)] if scale == 1 else []) + streams:
                cases.append({**common, "streamed": streamed, "workers": workers})
            if scale == 16 and limit:
                cases.append({**common, "streamed": True, "workers": None if kind == "array" else 2, "limit": limit})
                if kind == "array":
                    cases.append({**common, "streamed": False, "workers": None, "limit": limit, "control": True})
    print(f"data written under {work} in {time.perf_counter() - started:.0f} s", flush=True)

    rows = []
    print(f"{'case':32s} {'rows':>7s} {'data MB':>8s} {'RSS MB':>7s} {'tree MB':>8s} {'img/s':>8s} {'epoch s':>8s} "
          f"{'wall s':>7s} {'rc':>4s}")
    for case in cases:
        r = run_case(case, case["path"], work, args, case.get("limit"))
        rows.append(r)
        ips = f"{r['images_per_s']:8.0f}" if r["images_per_s"] else f"{'-':>8s}"
        secs = f"{r['seconds']:8.2f}" if r["seconds"] else f"{'-':>8s}"
        print(f"{r['case']:32s} {r['rows']:7d} {r['data_bytes'] / 1e6:8.1f} {r['peak_rss_mb']:7.0f} "
              f"{r['tree_peak_rss_mb']:8.0f} {ips} {secs} {r['wall_s']:7.1f} {r['rc']:4d}"
              + (f"  {r['error']}" if r["rc"] else ""), flush=True)

    plain = {"limit_mb": None}
    summary = {
        "array_stream_vs_memory_images_per_s_1x": ratio(rows, {"kind": "array", "scale": 1, "streamed": True, **plain},
                                                         {"kind": "array", "scale": 1, "streamed": False}, "images_per_s"),
        "folder_stream_w2_vs_memory_images_per_s_1x": ratio(
            rows, {"kind": "folder", "scale": 1, "streamed": True, "workers": 2},
            {"kind": "folder", "scale": 1, "streamed": False}, "images_per_s")}
    for kind, workers in (("array", None), ("folder", 2), ("folder", 0)):
        label = kind + (f"_w{workers}" if workers is not None else "")
        at = {"kind": kind, "streamed": True, "workers": workers, **plain}
        for key in ("peak_rss_mb", "tree_peak_rss_mb"):
            summary[f"{label}_stream_{key}_16x_vs_1x"] = ratio(rows, {**at, "scale": 16}, {**at, "scale": 1}, key)
        if limit and workers != 0:
            summary[f"{label}_stream_limited_vs_unlimited_images_per_s_16x"] = ratio(
                rows, {**at, "scale": 16, "limit_mb": limit, "control": False}, {**at, "scale": 16}, "images_per_s")
    summary["targets"] = {"throughput_ratio_at_least": 0.9, "rss_ratio_at_most": 1.1}
    print(json.dumps(summary, indent=1))

    write_json(out, {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()},
        "quick": args.quick, "array_base_rows": args.base, "folder_base_rows": args.folder_base,
        "note": "folders use a smaller base than arrays (--folder-base): PNG files are slow to write",
        "array_test_rows": args.test_rows, "folder_test_rows": args.folder_test_rows, "scales": list(SCALES),
        "compile": args.compile, "limit_mb": limit or None,
        "limit_below_16x_data": {k: limit < 16 * n * ROW_BYTES / 2 ** 20 for k, n in
                                 (("array", args.base), ("folder", args.folder_base))} if limit else None,
        "measures": {"peak_rss_mb": "ru_maxrss of os.wait4 on the training child (its largest process)",
                     "tree_peak_rss_mb": "max over 0.2 s samples of the summed VmRSS of the child and its descendants",
                     "images_per_s": "training rows / the epoch's seconds in metrics.jsonl",
                     "cgroup_peak_mb": "the limited group's peak usage, page cache included",
                     "page_cache": "each case's data files evicted (posix_fadvise DONTNEED) before it starts"},
        "cases": rows, "summary": summary})
    print(f"wrote {out}")
    if temp:
        temp.cleanup()


if __name__ == "__main__":
    main()

"""Benchmark: one training epoch on data 1x, 4x and 16x a base size, streamed from disk or held in memory, and the
memory the run takes; the largest streamed runs again inside a memory limit smaller than the data.

    python bench/data_scale.py                              # full: base 25,000 rows (16x: 1.26 GB), limit 1000 MB
    python bench/data_scale.py --quick --out /tmp/ds.json   # smoke test: 2,000 rows (folders 500), 1x and 16x

Data (made once under ``--work``): the 5,000 embedded MNIST digits tiled, each shifted by up to 2 pixels with noise
on its strokes, as an ``.npy`` of float32 (N, 1, 28, 28) with a fixed test part (``--test-rows``, given to the
loader as ``--test-fraction``) and as an image folder of PNGs (``train/``, ``test/``). Each case is one
``vae train --epochs 1`` in a child process, ``--stream never`` (in memory, at 1x and 4x: the throughput
reference) or ``always`` (the ``.npy`` read by positioned reads and its memory map; the PNGs decoded once into a
memory-mapped uint8 copy, or every batch by ``--workers`` DataLoader processes), its data's pages evicted from
the page cache first (``posix_fadvise``), so each case starts cold.

Per case: ``peak_rss_mb``, the kernel's peak resident set of the training process (its ``VmHWM``, read every
0.05 s while it runs: a high-water mark, so a late read holds the peak; ``ru_maxrss`` would also count this
process's resident set at the fork); ``tree_peak_rss_mb``, the
largest sum of ``VmRSS`` over the child and its descendants (the workers) sampled every 0.05 s, an upper bound as
pages shared by forked workers count once per process; ``images_per_s``, training rows / the epoch's ``seconds``
in the run's ``metrics.jsonl`` (the training loop only); the wall time. The limit is a fresh cgroup v1 memory group
beside this process's (``memory.limit_in_bytes``; else cgroup v2 ``memory.max``) that the child joins before exec;
when neither can be written, none (``"limit": null`` and the reason). A child it kills (rc 137) is recorded as
failed; ``control`` holds the largest array in memory under it and should be killed: the limit binds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
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

ROW_BYTES = 4 * 28 * 28  # one image as float32


def digits() -> np.ndarray:
    """The 5,000 embedded digits as uint8 (5000, 28, 28)."""
    data = load_embedded_mnist()
    return (torch.cat([data.train_x, data.test_x])[:, 0] * 255).round().to(torch.uint8).numpy()


def make_images(base: np.ndarray, start: int, n: int) -> np.ndarray:
    """Rows start..start+n of the tiled set (uint8 (n, 1, 28, 28)): digit ``i % 5000`` shifted and noised."""
    rng = np.random.default_rng(start)
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
        out = np.lib.format.open_memmap(path.with_suffix(".part"), mode="w+", dtype=np.float32, shape=(n, 1, 28, 28))
        for s in range(0, n, 8192):
            out[s:s + 8192] = make_images(base, s, min(8192, n - s)) / np.float32(255)
        out.flush()
        del out
        path.with_suffix(".part").rename(path)
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
    """Drop the file's (or the folder's files') pages from the page cache."""
    for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())  # dirty pages are not dropped
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def memory_group(limit_mb: int, name: str) -> tuple[Path | None, str]:
    """A fresh memory cgroup limited to ``limit_mb`` beside this process's (v1, else v2): (its folder, how), or
    (None, why not)."""
    errors = []  # lines of /proc/self/cgroup: "4:memory:/path" (v1), "0::/path" (v2)
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
            return group, f"cgroup {'v1' if knob.endswith('bytes') else 'v2'}: {group / knob}"
        except OSError as err:
            errors.append(f"{group / knob}: {err}")
            if group.exists():
                group.rmdir()
    return None, "; ".join(errors) or "no memory cgroup in /proc/self/cgroup"


def close_group(group: Path) -> float | None:
    """Remove the group; its peak usage in MB (the page cache charged to it included)."""
    knob = next((group / k for k in ("memory.max_usage_in_bytes", "memory.peak") if (group / k).exists()), None)
    peak = int(knob.read_text()) / 2 ** 20 if knob else None
    for _ in range(50):  # the workers of a killed child may take a moment to leave
        try:
            group.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    return peak


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


def hwm_kb(pid: int) -> int:
    """``VmHWM`` (KB) of ``pid``: the peak resident set of its memory since its ``exec`` (``ru_maxrss`` of a forked
    child would also hold this process's resident set at the fork), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return 0


def run_case(case: dict, work: Path, compile: str) -> dict:
    limit_mb = case.get("limit")
    name = "-".join([case["kind"], "stream" if case["streamed"] else "memory"] +
                    ([f"w{case['workers']}"] if case["workers"] is not None else []) + [f"{case['scale']}x"] +
                    (["limited"] if limit_mb else []) + (["control"] if case.get("control") else []))
    run, log_path = work / "runs" / name, work / "runs" / f"{name}.log"
    cmd = [sys.executable, "-m", "pyro_vae.inference.cli", "train", "--dataset", case["kind"], "--data-dir",
           str(case["path"]), "--stream", "always" if case["streamed"] else "never", "--epochs", "1", "--compile",
           compile, "--device", "cpu", "--quiet", "--no-plots", "--no-tensorboard", "--out", str(run), "--force"]
    if case["kind"] == "array":  # the fixed test part as the share the array loader splits off
        cmd += ["--test-fraction", repr(case["test_rows"] / (case["rows"] + case["test_rows"]))]
    if case["workers"] not in (None, "once"):  # a folder decoded every batch by this many DataLoader workers
        # ("once": decoded once into a memory-mapped uint8 copy, the default)
        cmd += ["--no-decode-once", "--workers", str(case["workers"])]
    group, how = memory_group(limit_mb, f"bench-{os.getpid()}-{name}") if limit_mb else (None, None)
    evict(case["path"])
    run.parent.mkdir(parents=True, exist_ok=True)
    start, tree = time.perf_counter(), 0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=(
            lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None)
        peak = 0
        while not (done := os.wait4(proc.pid, os.WNOHANG))[0]:
            tree, peak = max(tree, tree_rss_kb(proc.pid)), max(peak, hwm_kb(proc.pid))
            time.sleep(0.05)
    wall, code = time.perf_counter() - start, os.waitstatus_to_exitcode(done[1])
    try:  # what a killed child leaves running (the decoding pool of an in-memory folder) goes with it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.returncode = rc = code if code >= 0 else 128 - code  # 137: killed (SIGKILL), as a shell says
    row = {"case": name, **{k: case[k] for k in ("kind", "scale", "rows", "test_rows", "data_bytes", "streamed")},
           "workers": case["workers"], "limit_mb": limit_mb if group else None, "control": bool(case.get("control")),
           "limit_applied": how if group or not how else f"not applied: {how}", "peak_rss_mb": peak / 1024,
           "tree_peak_rss_mb": tree / 1024, "images_per_s": None, "seconds": None, "steps": None, "wall_s": wall, "rc": rc}
    if group:
        row["cgroup_peak_mb"] = close_group(group)
    if rc == 0:
        epoch = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        row["rows"] = json.loads((run / "data.json").read_text())["train"]
        row.update(seconds=epoch["seconds"], steps=epoch["steps"], images_per_s=row["rows"] / epoch["seconds"])
    else:
        lines = log_path.read_text().strip().splitlines()
        row["error"] = lines[-1] if lines else f"exit status {rc}, no output"
    return row


def ratio(rows: list[dict], num: dict, den: dict, key: str) -> float | None:
    """``key`` of the first successful row matching ``num`` over that of the first matching ``den``."""
    pick = [next((r[key] for r in rows if r["rc"] == 0 and all(r[k] == v for k, v in want.items())), None)
            for want in (num, den)]
    return pick[0] / pick[1] if None not in pick else None


def summarize(rows: list[dict]) -> dict:
    one, top, out = {"limit_mb": None, "scale": 1}, max(r["scale"] for r in rows), {}
    for kind, w in (("array", None), ("folder", "once"), ("folder", 2), ("folder", 0)):
        at, label = {**one, "kind": kind, "streamed": True, "workers": w}, kind + ("" if w is None else f"_w{w}")
        for scale in (1, 4):  # 4x: a longer epoch (about 7 s), less noisy than 1x's
            out[f"{label}_stream_vs_memory_images_per_s_{scale}x"] = ratio(
                rows, {**at, "scale": scale}, {**one, "scale": scale, "kind": kind, "streamed": False}, "images_per_s")
        for key in ("peak_rss_mb", "tree_peak_rss_mb"):
            out[f"{label}_stream_{key}_{top}x_vs_1x"] = ratio(rows, {**at, "scale": top}, at, key)
        limited = next((r["limit_mb"] for r in rows if r["limit_mb"] and r["kind"] == kind and r["workers"] == w), 0)
        if limited:
            out[f"{label}_stream_limited_vs_unlimited_images_per_s_{top}x"] = ratio(
                rows, {**at, "scale": top, "limit_mb": limited}, {**at, "scale": top}, "images_per_s")
    out["targets"] = {"throughput_ratio_at_least": 0.9, "rss_ratio_at_most": 1.1}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--base", type=int, default=25_000, help="array training rows at 1x")
    parser.add_argument("--folder-base", type=int, default=25_000, help="image-folder training rows at 1x")
    parser.add_argument("--test-rows", type=int, default=1_000, help="fixed test part of every array file")
    parser.add_argument("--folder-test-rows", type=int, default=500)
    parser.add_argument("--limit-mb", type=int, default=None, help="memory limit of the 16x streamed runs and the "
                        "control (default 1000, with --quick 0: none); below the 16x data, above a run's own needs")
    parser.add_argument("--compile", default="trace", help="vae train --compile (auto picks inductor for runs of "
                        "2,000 steps or more, and its compilation would then be timed in that case's epoch)")
    parser.add_argument("--work", type=Path, default=None, help="data and runs (kept; default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke test: base 2000, folders 500, 1x and 16x only")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/data_scale_cpu[_quick].json")
    args = parser.parse_args()
    scales = (1, 16) if args.quick else (1, 4, 16)
    if args.quick:
        args.base, args.folder_base, args.test_rows, args.folder_test_rows = 2000, 500, 200, 100
    limit = args.limit_mb if args.limit_mb is not None else (0 if args.quick else 1000)
    out = args.out or Path(f"bench/results/data_scale_cpu{'_quick' if args.quick else ''}.json")
    temp = tempfile.TemporaryDirectory(prefix="data_scale-") if args.work is None else None
    work = Path(temp.name) if temp else args.work
    work.mkdir(parents=True, exist_ok=True)

    base, cases, started = digits(), [], time.perf_counter()
    for kind, n, n_test in (("array", args.base, args.test_rows), ("folder", args.folder_base, args.folder_test_rows)):
        ways = [None] if kind == "array" else ["once", 2]  # a folder: decoded once, or every batch by 2 workers
        for scale in scales:
            path = write_array(work, base, scale * n + n_test) if kind == "array" else \
                write_folder(work, base, scale * n, n_test)
            common = {"kind": kind, "scale": scale, "rows": scale * n, "test_rows": n_test, "path": path,
                      "data_bytes": (scale * n + n_test) * ROW_BYTES}
            todo = ([(False, None)] if scale in (1, 4) else []) + [(True, w) for w in ways] + \
                ([(True, 0)] if kind == "folder" and scale == 1 else [])  # in-process decoding, at 1x only
            if scale == scales[-1] and limit:  # the largest streamed cases under the limit, and a control
                todo += [(True, w, limit) for w in ways] + [(False, None, limit, True)]
            cases += [{**common, **dict(zip(("streamed", "workers", "limit", "control"), c))} for c in todo]
    os.sync()  # no writeback of the new files overlaps the first case
    print(f"data written under {work} in {time.perf_counter() - started:.0f} s", flush=True)

    rows = []
    print(f"{'case':32s} {'rows':>7s} {'data MB':>8s} {'RSS MB':>7s} {'tree MB':>8s} {'img/s':>8s} {'epoch s':>8s} "
          f"{'wall s':>7s} {'rc':>4s}")
    for case in cases:
        rows.append(r := run_case(case, work, args.compile))
        print(f"{r['case']:32s} {r['rows']:7d} {r['data_bytes'] / 1e6:8.1f} {r['peak_rss_mb']:7.0f} "
              f"{r['tree_peak_rss_mb']:8.0f} {r['images_per_s'] or 0:8.0f} {r['seconds'] or 0:8.2f} "
              f"{r['wall_s']:7.1f} {r['rc']:4d}" + (f"  {r['error']}" if r["rc"] else ""), flush=True)
    summary = summarize(rows)
    print(json.dumps(summary, indent=1))

    applied = next((r for r in rows if r["limit_mb"]), None)
    write_json(out, {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()},
        "quick": args.quick, "array_base_rows": args.base, "folder_base_rows": args.folder_base, "scales": scales,
        "note": "folder cases: 'once' decodes the images once into a memory-mapped uint8 copy (the default of "
                "--stream), 2 and 0 decode every batch in that many DataLoader workers (--no-decode-once)",
        "array_test_rows": args.test_rows, "folder_test_rows": args.folder_test_rows, "compile": args.compile,
        "limit": {"mb": limit, "how": applied["limit_applied"], "below_16x_train_data": {
            k: limit * 2 ** 20 < scales[-1] * n * ROW_BYTES for k, n in (("array", args.base),
                                                                          ("folder", args.folder_base))}}
        if applied else None,
        "limit_reason": None if applied else next((r["limit_applied"] for r in rows if r["limit_applied"]),
                                                  "none asked (--limit-mb 0)"),
        "measures": " ".join(__doc__.split("\n\n")[3].split()) + " cgroup_peak_mb: the limited group's peak usage, "
                    "the page cache charged to it included.",
        "cases": rows, "summary": summary})
    print(f"wrote {out}")
    if temp:
        temp.cleanup()


if __name__ == "__main__":
    main()

"""How far one identity store goes: matching a track against the bank in memory for 10k, 100k and 1M templates,
what a running worker's reload costs after one change (incremental) against reading everything again, the store's
write rate (sightings per second) for one and several writers, and how many cameras one worker takes on this CPU.

    python benchmarks/store_scale.py                                  # matching only
    python benchmarks/store_scale.py --store postgresql://facetrack@127.0.0.1:5432/bench --writers 1 4
    python benchmarks/store_scale.py --store bench.db                 # SQLite, for comparison
    python benchmarks/store_scale.py --sizes --reload 10000 100000    # a worker's reload, SQLite file
    python benchmarks/store_scale.py --sizes --cameras 1 2 4 --clip clip.mp4 --detector D.onnx --recognizer R.onnx

Matching: `StrangerBank.match` (what each stranger decision does, under the mint lock on PostgreSQL) and the
gallery's `Gallery.match` (what every embedding of every track does), on random unit vectors with 5 templates per
person; the fastest of `--repeat` tries after one warm-up, single query. Loading: `StrangerBank.load`, what a
worker's reload after a change costs in memory (the database read comes on top).

Writing: each writer is a thread with its own connection recording `--sightings` sightings of a 128-d embedding
and a ~6 kB JPEG crop, each its own transaction, as `watch` does when a track ends; every 10th sighting's mean
is offered as a template. Use a database of its own: the benchmark writes into it.

Reloading: a store with N templates (5 per stranger) in a fresh SQLite file; a worker's `IdentityMemory` loads it,
then a stranger is named through another connection: the incremental reload (the change journal, that person's
rows, the bank updated in place) against `reload()` (everything read and the bank rebuilt), best of three.

Cameras: `facetrack watch` with N cameras all reading `--clip` as files (not paced: every frame is processed, as
fast as the machine goes), identity and a store on. Per N: frames, wall time, total fps, and the CPU time the
worker used per frame; the CPU cost of one more frame is the slope between the smallest and largest N (model
loading cancels out), and `cores × 1000 / (ms per frame × fps)` is how many cameras at 5, 10 or 15 fps that is on
this machine — CPU time is steadier than wall time on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from facetrack.config import RecognizerThresholds, StoreConfig
from facetrack.gallery import Gallery
from facetrack.store import Recognizer, Sighting, open_store
from facetrack.store.bank import StrangerBank
from facetrack.store.memory import IdentityMemory


def _units(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: 1M×512 float64 at once would not fit small machines
        block = rng.standard_normal((min(100_000, n - start), dim)).astype(np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _fastest(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _match_row(n: int, dim: int, repeat: int, rng: np.random.Generator) -> str:
    vectors = _units(n, dim, rng)
    people = n // 5
    labels = [f"unknown-{i // 5 + 1}" for i in range(n)]
    bank = StrangerBank(0.55, 0.10)
    load = _fastest(lambda: bank.load(list(zip(labels, vectors, strict=True))), max(1, repeat // 5))
    query = vectors[n // 2] * 0.8 + _units(1, dim, rng)[0] * 0.2
    query /= np.linalg.norm(query)
    bank_match = _fastest(lambda: bank.match(query), repeat)
    gallery = Gallery([f"p{i}" for i in range(people)], np.arange(n) // 5, vectors, "x", "bench")
    gallery_match = _fastest(lambda: gallery.match(query), repeat)
    return (f"| {n:,} | {people:,} | {load * 1e3:,.0f} ms | {bank_match * 1e3:,.2f} ms | "
            f"{gallery_match * 1e3:,.2f} ms |")


def matching(sizes: list[int], dim: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    print(f"\nmatching one track in memory ({dim}-d, 5 templates per person, fastest of {repeat})\n")
    print("| templates | people | bank load | bank match (stranger decision) | gallery match (each embedding) |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        print(_match_row(n, dim, repeat, rng), flush=True)


def writing(location: str, writers: list[int], sightings: int) -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    recognizer = Recognizer("b" * 64, "bench", "/bench.onnx", 128)
    setup = open_store(location)
    setup.bind_recognizer(recognizer)
    where = setup.location
    print(f"\nwriting sightings into {where} (each its own transaction, 6 kB crop, 128-d mean)\n")
    print("| writers | sightings | seconds | sightings/s |")
    print("|---:|---:|---:|---:|")
    for count in writers:
        seconds = _write_round(location, count, sightings, crop, rng)
        total = count * sightings
        print(f"| {count} | {total:,} | {seconds:.2f} | {total / seconds:,.0f} |", flush=True)
    setup.close()


def _write_round(location: str, count: int, sightings: int, crop: bytes, rng: np.random.Generator) -> float:
    """`count` writers at once, each with its own connection; returns the wall time of them all."""
    stores = [open_store(location) for _ in range(count)]
    labels = [s.mint_stranger() for s in stores]
    means = _units(count, 128, rng)
    start_line = threading.Barrier(count + 1)

    def write(k: int) -> None:
        start_line.wait()
        now = time.time()
        for i in range(sightings):
            stores[k].record(Sighting(labels[k], f"cam{k}", "bench", i, now, now + 1, 0.0, 1.0, 5, means[k], crop,
                                      0.5), template=i % 10 == 0)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    for store in stores:
        store.close()
    return seconds


def reloading(sizes: list[int], dim: int) -> None:
    print(f"\na worker's reload after one naming, SQLite file ({dim}-d, 5 templates per stranger, best of 3)\n")
    print("| templates | strangers | first load | incremental reload | full reload |")
    print("|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(2)
    recognizer = Recognizer("r" * 64, "bench", "/bench.onnx", dim)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "S.db"
            open_store(path).close()
            vectors = _units(n, dim, rng)
            people = n // 5
            with sqlite3.connect(path) as conn:  # filled in one transaction: the benchmark's setup, not its subject
                now = time.time()
                conn.executemany("INSERT INTO people (id, label, named, created) VALUES (?, ?, 0, ?)",
                                 [(i + 1, f"unknown-{i + 1}", now) for i in range(people)])
                conn.executemany("INSERT INTO templates (person_id, embedding, quality, created) VALUES (?, ?, 0.5, ?)",
                                 [(i // 5 + 1, vectors[i].tobytes(), now) for i in range(n)])
                conn.execute("INSERT INTO meta VALUES ('next_unknown', ?)", (str(people + 1),))
            conn.close()
            store = open_store(path)
            started = time.perf_counter()
            thresholds = RecognizerThresholds(threshold=0.4, margin=0.05, relink_threshold=0.45)
            memory = IdentityMemory(store, StoreConfig(), thresholds, recognizer)
            first = time.perf_counter() - started
            editor = open_store(path)
            incremental, full = [], []
            k = 0
            while len(incremental) < 3 and k < 20:
                k += 1
                editor.name(f"unknown-{k}", f"person {k}")
                started = time.perf_counter()
                if not memory.refresh():
                    continue  # the store's watcher thread reloaded first: not measured
                incremental.append(time.perf_counter() - started)
                assert memory.renamed.get(f"unknown-{k}") == f"person {k}"
                started = time.perf_counter()
                memory.reload()
                full.append(time.perf_counter() - started)
            editor.close()
            memory.close()
        print(f"| {n:,} | {people:,} | {first * 1e3:,.0f} ms | {min(incremental) * 1e3:,.1f} ms | "
              f"{min(full) * 1e3:,.0f} ms |", flush=True)


def cameras(counts: list[int], clip: Path, detector: Path, recognizer: Path) -> None:
    cores = os.cpu_count() or 1
    print(f"\ncameras per worker: `watch` of N cameras reading {clip.name} as files, identity and a store on, "
          f"{cores} cores\n")
    print("| cameras | frames | wall s | fps (all cameras) | CPU ms per frame |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            stats = Path(tmp) / "stats.jsonl"
            command = [sys.executable, "-m", "facetrack", "watch",
                       *(f"cam{k}={clip}" for k in range(count)), "--store", str(Path(tmp) / "S.db"),
                       "--stats", str(stats), "--detector", str(detector), "--recognizer", str(recognizer)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            with open(Path(tmp) / "console.txt", "w") as console:
                subprocess.run(command, stdout=console, stderr=console, check=True, timeout=1800)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            final = [json.loads(line) for line in stats.read_text().splitlines()][-1]
            frames = sum(c["frames"] for c in final["cameras"])
        rows.append((count, frames, cpu))
        print(f"| {count} | {frames:,} | {wall:.1f} | {frames / wall:.1f} | {cpu / frames * 1e3:.0f} |", flush=True)
    if len(rows) > 1 and rows[-1][1] > rows[0][1]:
        per_frame = (rows[-1][2] - rows[0][2]) / (rows[-1][1] - rows[0][1])
        print(f"\none more frame costs {per_frame * 1e3:.0f} ms of CPU: on {cores} cores, "
              + ", ".join(f"{cores / (per_frame * fps):.1f} cameras at {fps} fps" for fps in (5, 10, 15)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                        help="templates for the matching table (none: skip it)")
    parser.add_argument("--reload", type=int, nargs="*", default=[], help="templates for the reload table")
    parser.add_argument("--cameras", type=int, nargs="*", default=[], help="camera counts for the worker table")
    parser.add_argument("--clip", type=Path, help="the video every camera reads (--cameras)")
    parser.add_argument("--detector", type=Path, help="detector model (--cameras)")
    parser.add_argument("--recognizer", type=Path, help="recognizer model (--cameras)")
    parser.add_argument("--dim", type=int, default=128, help="embedding size (128: MobileFaceNet, 512: ArcFace)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--store", help="also measure writes into this store (postgresql:// URL or .db file)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sightings", type=int, default=500, help="per writer")
    args = parser.parse_args()
    if args.sizes:
        matching(args.sizes, args.dim, args.repeat)
    if args.reload:
        reloading(args.reload, args.dim)
    if args.store:
        writing(args.store, args.writers, args.sightings)
    if args.cameras:
        if not (args.clip and args.detector and args.recognizer):
            parser.error("--cameras needs --clip, --detector and --recognizer")
        cameras(args.cameras, args.clip, args.detector, args.recognizer)


if __name__ == "__main__":
    main()

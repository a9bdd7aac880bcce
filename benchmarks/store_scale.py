"""How far one identity store goes: matching a track against the bank in memory for 10k, 100k and 1M templates,
and the store's write rate (sightings per second) for one and several writers.

    python benchmarks/store_scale.py                                  # matching only
    python benchmarks/store_scale.py --store postgresql://facetrack@127.0.0.1:5432/bench --writers 1 4
    python benchmarks/store_scale.py --store bench.db                 # SQLite, for comparison

Matching: `StrangerBank.match` (what each stranger decision does, under the mint lock on PostgreSQL) and the
gallery's `Gallery.match` (what every embedding of every track does), on random unit vectors with 5 templates per
person; the fastest of `--repeat` tries after one warm-up, single query. Loading: `StrangerBank.load`, what a
worker's reload after a change costs in memory (the database read comes on top).

Writing: each writer is a thread with its own connection recording `--sightings` sightings of a 128-d embedding
and a ~6 kB JPEG crop, each its own transaction, as `watch` does when a track ends; every 10th sighting's mean
is offered as a template. Use a database of its own: the benchmark writes into it.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from facetrack.gallery import Gallery
from facetrack.store import Recognizer, Sighting, open_store
from facetrack.store.bank import StrangerBank


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128, help="embedding size (128: MobileFaceNet, 512: ArcFace)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--store", help="also measure writes into this store (postgresql:// URL or .db file)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sightings", type=int, default=500, help="per writer")
    args = parser.parse_args()
    matching(args.sizes, args.dim, args.repeat)
    if args.store:
        writing(args.store, args.writers, args.sightings)


if __name__ == "__main__":
    main()

"""How many persistent stranger IDs the ASL clips get, per bank threshold and margin.

Each of the 9 clips of media/real/asl is one run into one store; the same five people recur (MANIFEST.md, by
their clothes). A good bank gives 5 IDs and never one ID to two people. Each clip goes through the real
`Pipeline` once; what the identity memory is asked (a track's mean at its decision, its sighting at its end) is
recorded and replayed against a fresh store for every threshold and clip order: the answers do not change what
the pipeline does next, so the replay is what a full run at that threshold would do.

    PYTHONPATH=. python benchmarks/stranger_bank.py --assets ../shared [--detector scrfd_2.5g_bnkps.onnx]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from facetrack.config import FacetrackConfig, load_config
from facetrack.models.faces import FaceModels
from facetrack.pipeline import Pipeline
from facetrack.sources import FileSource
from facetrack.store import Recognizer, Sighting
from facetrack.store.memory import IdentityMemory
from facetrack.store.sqlite import SqliteStore

PEOPLE = {"again": "misfits", "brother": "misfits", "help": "misfits", "book": "yellow", "learn": "yellow",
          "bird": "grey", "milk": "grey", "eat": "sweater", "hungry": "plaid"}


class RecordingMemory(IdentityMemory):
    """An identity memory that also keeps the questions it was asked, in order."""

    calls: list[tuple[str, object]]

    def stranger_label(self, mean: np.ndarray, looks: int) -> str:
        label = super().stranger_label(mean, looks)
        self.calls.append(("label", (mean.copy(), looks, label)))
        return label

    def record(self, sighting: Sighting, template: bool = True) -> str | None:
        self.calls.append(("record", (sighting, template)))
        return super().record(sighting, template)


def record_clips(config: FacetrackConfig, clips: list[Path], scratch: Path
                 ) -> tuple[dict[str, list[tuple[str, object]]], Recognizer]:
    models = FaceModels.load(config, identity=True)
    detector, embedder = models.detector, models.embedder
    assert embedder is not None
    recognizer = Recognizer(embedder.fingerprint, embedder.name, str(embedder.model_path), embedder.dim)
    calls: dict[str, list[tuple[str, object]]] = {}
    for clip in clips:
        # A fresh memory per clip: only the questions matter here, the replay gives the answers.
        memory = RecordingMemory(SqliteStore(scratch / f"{clip.stem}.db"), config.store,
                                 config.identity.thresholds_for(embedder.name), recognizer)
        memory.calls = []
        source = FileSource(clip)
        pipeline = Pipeline(config, detector=detector, frame_rate=float(source.info.fps), embedder=embedder,
                            memory=memory)
        last = (0, 0.0)
        for frame in source:
            pipeline.process(frame)
            last = (frame.index, frame.pts)
        pipeline.finish(*last)  # every track ends, the last sightings are written
        source.close()
        memory.close()
        calls[clip.stem] = memory.calls
    return calls, recognizer


def replay(config: FacetrackConfig, calls: dict[str, list[tuple[str, object]]], order: list[str], threshold: float,
           margin: float, recognizer: Recognizer, scratch: Path) -> dict[str, set[str]]:
    """Persistent ID → the people (truth) filed under it."""
    path = scratch / f"replay-{threshold}-{margin}-{'-'.join(order)}.db"
    thresholds = config.identity.thresholds_for(recognizer.name).model_copy(
        update={"bank_threshold": threshold, "bank_margin": margin})
    memory = IdentityMemory(SqliteStore(path), config.store, thresholds, recognizer)
    filed: dict[str, set[str]] = {}
    for clip in order:
        labels: dict[str, str] = {}
        for kind, payload in calls[clip]:
            if kind == "label":
                mean, looks, old = payload  # type: ignore[misc]
                labels[old] = memory.stranger_label(mean, looks)
            else:
                sighting, template = payload  # type: ignore[misc]
                label = labels.get(sighting.identity, sighting.identity)
                memory.record(replace(sighting, identity=label, id=None), template)
                filed.setdefault(label, set()).add(PEOPLE[clip])
    memory.close()
    return filed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, default=Path("../shared"))
    parser.add_argument("--detector", default="scrfd_500m_bnkps.onnx")
    parser.add_argument("--recognizer", default="mobilefacenet_128.onnx")
    parser.add_argument("--orders", type=int, default=20, help="clip orders tried per threshold (the first is "
                                                               "alphabetical)")
    args = parser.parse_args()
    models = args.assets / "models"
    config = load_config(None, {"models": {"detector": models / args.detector, "recognizer": models / args.recognizer},
                                "identity": {"enabled": True}})
    clips = sorted((args.assets / "media/real/asl").glob("*.mkv"))
    rng = random.Random(0)
    orders = [[c.stem for c in clips]] + [rng.sample([c.stem for c in clips], len(clips))
                                          for _ in range(args.orders - 1)]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        calls, recognizer = record_clips(config, clips, scratch)
        decided = [(clip, p) for clip, c in calls.items() for k, p in c if k == "label"]
        print(f"{args.detector} + {args.recognizer}: {len(decided)} strangers decided, looks at the decision "
              f"{sorted({p[1] for _, p in decided})}")  # type: ignore[index]
        means = np.stack([p[0] for _, p in decided])  # type: ignore[index]
        sims = means @ means.T
        who = [PEOPLE[clip] for clip, _ in decided]
        same = [sims[i, j] for i in range(len(who)) for j in range(i + 1, len(who)) if who[i] == who[j]]
        other = [sims[i, j] for i in range(len(who)) for j in range(i + 1, len(who)) if who[i] != who[j]]
        print(f"decision means across clips: same person {min(same):.2f}–{max(same):.2f}, different people "
              f"{min(other):.2f}–{max(other):.2f}")
        print(f"{'threshold':>9} {'margin':>6}  IDs (5 people; min–max over {len(orders)} orders)  "
              "impure IDs (worst)  people split (worst)")
        for threshold in (0.40, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90):
            for margin in (0.05, 0.10, 0.20):
                results = [replay(config, calls, order, threshold, margin, recognizer, scratch) for order in orders]
                ids = [len(r) for r in results]
                impure = [sum(len(people) > 1 for people in r.values()) for r in results]
                split = [sum(len({i for i, p in r.items() if person in p}) > 1 for person in set(PEOPLE.values()))
                         for r in results]
                print(f"{threshold:>9.2f} {margin:>6.2f}  {min(ids)}–{max(ids):<38} {max(impure):<19} {max(split)}")


if __name__ == "__main__":
    main()

"""What every command shares: the typer apps, the consoles, the option types and the config they build."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Who is on camera, live: detect, track and identify faces in video.")
models_app = typer.Typer(no_args_is_help=True, help="List, download and verify model packs.")
app.add_typer(models_app, name="models")
gallery_app = typer.Typer(no_args_is_help=True, help="Build and edit a gallery of enrolled people.")
app.add_typer(gallery_app, name="gallery")
unknowns_app = typer.Typer(no_args_is_help=True, help="Name or merge the strangers the store remembers.")
app.add_typer(unknowns_app, name="unknowns")
store_app = typer.Typer(no_args_is_help=True, help="Look after the identity memory (the store).")
app.add_typer(store_app, name="store")

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see configs/).")]
DetectorOpt = Annotated[Path | None, typer.Option("--detector", help="SCRFD detector ONNX file.")]
RecognizerOpt = Annotated[Path | None, typer.Option("--recognizer", help="ArcFace-family recognizer ONNX file.")]
PackOpt = Annotated[str | None, typer.Option("--pack", help="Model pack: buffalo_l, buffalo_s, buffalo_sc.")]
ProvidersOpt = Annotated[str | None, typer.Option(
    "--providers", help="auto, cpu, cuda, tensorrt, or a comma-separated list.")]
RequireGpuOpt = Annotated[bool, typer.Option(
    "--require-gpu", help="Refuse to run when no GPU provider starts, instead of warning and using the CPU.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what runs where.")]
DetectIntervalOpt = Annotated[str | None, typer.Option(
    "--detect-interval", help="Full-frame detection every N frames, faces followed on crops between (1: every "
                              "frame; auto: 5 for files, measured for live sources).", show_default=False)]
GalleryOpt = Annotated[Path | None, typer.Option(
    "--gallery", "-g", help="Gallery: a folder of per-person photo folders, or a .db built from one.")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Identity memory (SQLite file, or postgresql://user@host:port/db shared by several machines): "
                    "strangers keep their unknown-N across runs, sightings are recorded. Default: store.path in "
                    "the config, else $FACETRACK_HOME/store.db.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def build_config(config: Path | None, detector: Path | None = None, recognizer: Path | None = None,
                 pack: str | None = None, providers: str | None = None, gallery: Path | None = None,
                 require_gpu: bool | None = None,
                 extra: dict[str, Any] | None = None) -> FacetrackConfig:
    """The config file with CLI flags laid over it (a flag always wins)."""
    provider_list: str | list[str] | None = None
    if providers is not None:
        provider_list = "auto" if providers == "auto" else [p.strip() for p in providers.split(",") if p.strip()]
    overrides: dict[str, Any] = {
        "models": {"detector": detector, "recognizer": recognizer, "pack": pack},
        "runtime": {"providers": provider_list, "require_gpu": require_gpu or None},  # unset flag: the file decides
        "identity": {"gallery": gallery},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return load_config(config, overrides)


def input_files(config: Path | None, detector: Path | None, recognizer: Path | None,
                 gallery: Path | None) -> list[tuple[str, Path]]:
    """The files a command reads besides its video (an output must never be one of them)."""
    named = (("config file", config), ("detector", detector), ("recognizer", recognizer), ("gallery", gallery))
    return [(what, path) for what, path in named if path is not None and not path.is_dir()]


def detect_interval(value: str | None) -> dict[str, Any]:
    """The `--detect-interval` flag as a config override ({} when not given)."""
    if value is None:
        return {}
    text = value.strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise FacetrackError(f"--detect-interval {value!r}: use auto or a whole number of frames, 1 or more")
    return {"detector": {"interval": "auto" if text == "auto" else int(text)}}


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)



def store_file(store: str | None) -> Path | None:
    """The file of a local store (None for none, or for a database server's URL)."""
    from facetrack.store.postgres import is_postgres_url

    return None if store is None or is_postgres_url(store) else Path(store)



def default_store(create: bool = False) -> Path:
    from facetrack.models.registry import facetrack_home

    home = facetrack_home()
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home / "store.db"



def print_stage_table(stage_seconds: dict[str, float], wall: float) -> None:
    table = Table(title="time per stage")
    for column in ("stage", "seconds", "share of wall time"):
        table.add_column(column)
    for stage, seconds in stage_seconds.items():
        table.add_row(stage, f"{seconds:.2f}", f"{100 * seconds / wall:.0f} %" if wall else "–")
    console.print(table)



def existing_store(store: str | None, config: Path | None = None):  # type: ignore[no-untyped-def]
    """An existing store: --store, else the config's store.path, else $FACETRACK_HOME/store.db."""
    from facetrack.store import open_store

    cfg = load_config(config)
    location = store or cfg.store.path or default_store()
    return open_store(location, create=False, max_templates=cfg.store.max_templates,
                      diversity=cfg.store.template_diversity), cfg

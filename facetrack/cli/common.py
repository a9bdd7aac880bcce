"""What every command shares: the typer apps, the consoles, the option types and the config they build."""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
_STORE_HELP = ("Identity memory (SQLite file{}, or postgresql://user@host:port/db{}): strangers keep their unknown-N "
               "across runs, {}")
StoreOpt = Annotated[str | None, typer.Option("--store", help=_STORE_HELP.format(
    "", " shared by several machines", "sightings are recorded. Default: store.path in the config, else "
    "$FACETRACK_HOME/store.db."))]
StoreIfAskedOpt = Annotated[str | None, typer.Option("--store", help=_STORE_HELP.format(  # annotate: no default store
    ", created if missing", "", "and every track's sighting is recorded."))]
BlurOpt = Annotated[str | None, typer.Option(
    "--blur", metavar="unknown|all|none", show_default=False,
    help="Pixelate faces in what is drawn: unknown (every face without a gallery name, strangers and faces not "
         "yet named), all, or none (default: annotation.blur in the config, else none).")]
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


@dataclass(frozen=True)
class ModelOptions:
    """The model options of every command that runs the models, as one value: --config, --detector,
    --recognizer, --pack, --providers and --require-gpu (see `model_options`)."""

    config: Path | None = None
    detector: Path | None = None
    recognizer: Path | None = None
    pack: str | None = None
    providers: str | None = None
    require_gpu: bool = False

    def build_config(self, gallery: Path | None = None, extra: dict[str, Any] | None = None) -> FacetrackConfig:
        """The config file with these flags (and `gallery`, `extra`) laid over it."""
        return build_config(self.config, self.detector, self.recognizer, self.pack, self.providers, gallery,
                            self.require_gpu, extra=extra)

    def input_files(self, gallery: Path | None = None) -> list[tuple[str, Path]]:
        """The files these options make a command read (an output must never be one of them)."""
        return input_files(self.config, self.detector, self.recognizer, gallery)

    def values(self) -> tuple[Path | None, Path | None, Path | None, str | None, str | None, bool]:
        """(config, detector, recognizer, pack, providers, require_gpu)."""
        return self.config, self.detector, self.recognizer, self.pack, self.providers, self.require_gpu


NO_MODEL_FLAGS = ModelOptions()  # the default of a command's `models` parameter: no flag given

# The command-line form of each ModelOptions field, in its order.
_MODEL_FLAGS: dict[str, tuple[Any, Any]] = {
    "config": (ConfigOpt, None), "detector": (DetectorOpt, None), "recognizer": (RecognizerOpt, None),
    "pack": (PackOpt, None), "providers": (ProvidersOpt, None), "require_gpu": (RequireGpuOpt, False),
}
assert list(_MODEL_FLAGS) == [f.name for f in fields(ModelOptions)]
Command = TypeVar("Command", bound=Callable[..., Any])


def model_options(command: Command) -> Command:
    """Give a command the model options as one `models: ModelOptions` parameter.

    typer sees the six options (their flags and help, where `models` stands in the signature); the command
    receives them packed. Put it under `@app.command()`.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    if "models" not in signature.parameters:
        raise TypeError(f"{command.__name__} has no `models: ModelOptions` parameter")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "models":
            parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                             annotation=annotation)
                           for name, (annotation, default) in _MODEL_FLAGS.items()]
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                                                annotation=hints.get(parameter.name, parameter.annotation)))

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        models = ModelOptions(**{name: values.pop(name) for name in _MODEL_FLAGS})
        return command(models=models, **values)

    run.__signature__ = signature.replace(parameters=parameters, return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    del run.__wrapped__  # type: ignore[attr-defined]  # typer reads the signature above, not the command's
    return typing.cast(Command, run)


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


def blur_mode(value: str | None) -> dict[str, Any]:
    """The `--blur` flag as a config override ({} when not given)."""
    if value is None:
        return {}
    text = value.strip().lower()
    if text not in ("unknown", "all", "none"):
        raise FacetrackError(f"--blur {value!r}: use unknown (faces without a gallery name), all or none")
    return {"annotation": {"blur": text}}


class _HideSecrets(logging.Filter):
    """The last guard before a log line is shown: a URL that carries a secret is shown by its label."""

    def filter(self, record: logging.LogRecord) -> bool:
        from facetrack.urls import hide_secrets

        message = record.getMessage()
        hidden = hide_secrets(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, show_time=False)
    handler.addFilter(_HideSecrets())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler], force=True)



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

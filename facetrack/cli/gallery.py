"""`gallery` and `identify`: enrolled people, and who is in a photo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facetrack.cli.common import (
    NO_MODEL_FLAGS,
    ConfigOpt,
    ModelOptions,
    app,
    gallery_app,
    model_options,
    out,
    setup_logging,
)
from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError


def _enroller(cfg: FacetrackConfig):  # type: ignore[no-untyped-def]
    from facetrack.models.faces import FaceModels

    return FaceModels.load(cfg, identity=True, gallery=False).enroller


@gallery_app.command("build")
@model_options
def gallery_build(
    folder: Annotated[Path, typer.Argument(help="Folder with one sub-folder of photos per person.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Gallery file to write (.db).")],
    models: ModelOptions = NO_MODEL_FLAGS,
) -> None:
    """Build a gallery from FOLDER/<person>/*.jpg (the person's name is the folder name)."""
    from facetrack.gallery import GalleryStore, check_gallery_output, enroll_folder, photos_by_person

    setup_logging(False)
    check_gallery_output(output)  # mistakes fail before the models load
    photos_by_person(folder)
    enroller = _enroller(models.build_config())
    store = GalleryStore(output)
    store.build(enroll_folder(folder, enroller), enroller.embedder)
    people = store.people()
    out.print(f"{output}: {len(people)} people, {sum(people.values())} templates ({enroller.embedder.name})")


@gallery_app.command("add")
@model_options
def gallery_add(
    gallery: Annotated[Path, typer.Argument(help="Gallery file (.db); created if missing.")],
    name: Annotated[str, typer.Argument(help="The person's name.")],
    photos: Annotated[list[Path], typer.Argument(help="Photos of the person, one face each.")],
    models: ModelOptions = NO_MODEL_FLAGS,
) -> None:
    """Add photos of a person (all of them, or none if one is refused)."""
    from facetrack.gallery import GalleryStore, check_gallery_output, check_person_name

    check_person_name(name)  # mistakes fail before the models load
    check_gallery_output(gallery)
    enroller = _enroller(models.build_config())
    templates = [enroller.template(photo) for photo in photos]  # a refused photo stops before any write
    store = GalleryStore(gallery)
    store.add(name, templates, enroller.embedder)
    out.print(f"{name}: {store.people()[name]} templates in {gallery}")


@gallery_app.command("remove")
def gallery_remove(gallery: Annotated[Path, typer.Argument(help="Gallery file (.db).")],
                   name: Annotated[str, typer.Argument(help="The person to delete.")]) -> None:
    """Delete a person and every template of theirs from the file (nothing of them is left in it)."""
    from facetrack.gallery import GalleryStore

    removed = GalleryStore(gallery).remove(name)
    out.print(f"removed {name} ({removed} templates) from {gallery}")


@gallery_app.command("clear-cache")
def gallery_clear_cache(config: ConfigOpt = None) -> None:
    """Overwrite and delete the galleries cached from photo folders (rebuilt from the folders when next used)."""
    from facetrack.gallery import clear_cache
    from facetrack.models.registry import cache_root

    cache_dir = cache_root(load_config(config).models).parent / "galleries"
    removed = clear_cache(cache_dir)
    out.print(f"removed {len(removed)} cached galleries from {cache_dir}", highlight=False)


@gallery_app.command("list")
def gallery_list(gallery: Annotated[Path, typer.Argument(help="Gallery file (.db).")]) -> None:
    """The people in a gallery and their number of templates."""
    from facetrack.gallery import GalleryStore

    store = GalleryStore(gallery)
    meta = store.meta()
    table = Table(title=f"{gallery} (recognizer {meta.get('model_name', '?')})")
    table.add_column("person")
    table.add_column("templates", justify="right")
    for person, count in store.people().items():
        table.add_row(person, str(count))
    out.print(table)


@app.command()
@model_options
def identify(
    images: Annotated[list[Path], typer.Argument(help="Still images.")],
    gallery: Annotated[Path, typer.Option("--gallery", "-g", help="Photo folder or .db gallery.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    models: ModelOptions = NO_MODEL_FLAGS,
) -> None:
    """Every face in still images: the gallery name or `unknown`, with similarity and box."""
    import json

    from facetrack.detect import read_photo
    from facetrack.gallery import open_gallery
    from facetrack.models.registry import cache_root
    from facetrack.types import LANDMARKS

    setup_logging(False)
    cfg = models.build_config(gallery)
    for image_path in images:  # a bad path fails before the models load
        if not image_path.is_file():
            raise FacetrackError(f"image not found: {image_path}")
    enroller = _enroller(cfg)
    known = open_gallery(gallery, enroller, cache_root(cfg.models).parent / "galleries")
    thresholds = cfg.identity.thresholds_for(enroller.embedder.name)
    report = []
    for image_path in images:
        photo = read_photo(image_path)
        if photo is None:
            raise FacetrackError(f"cannot read image {image_path}: corrupt or not an image (use JPEG or PNG)")
        image, scale = photo
        faces = enroller.detector.detect_still(image)
        vectors = enroller.embedder.embed(image, faces.data[LANDMARKS])
        faces.xyxy *= scale  # boxes in the photo's own pixels
        names = known.identify(vectors, thresholds.threshold, thresholds.margin)
        report.append({"image": str(image_path), "faces": [
            {"identity": name or "unknown", "known": name is not None, "similarity": round(sim, 3),
             "score": round(float(score), 3), "box": [round(float(v), 1) for v in box]}
            for (name, sim), score, box in zip(names, faces.confidence, faces.xyxy, strict=True)]})
    if as_json:
        print(json.dumps({"images": report}))
        return
    table = Table(title=f"faces identified against {gallery}")
    for column in ("image", "identity", "similarity", "box"):
        table.add_column(column)
    for entry in report:
        for face in entry["faces"] or [{"identity": "(no face)", "similarity": None, "box": []}]:
            sim = "" if face["similarity"] is None else f"{face['similarity']:.2f}"
            table.add_row(Path(entry["image"]).name, face["identity"], sim, str(face["box"]))
    out.print(table)


# --- who was here: the identity memory ----------------------------------------------------------------------



"""`facetrack serve`: the review page's API on a store filled by real `annotate --store` runs, checked against what
the CLI reads back from the same store."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.web_store import copy_store, filled_store

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
with warnings.catch_warnings():  # newer Starlette would rather have httpx2 under its test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from facetrack.web.app import create_app  # noqa: E402

LOCAL = "http://127.0.0.1:8080"
TOKEN = "a-long-enough-secret-123"


@pytest.fixture(scope="module")
def made_store(tmp_path_factory: pytest.TempPathFactory, assets: Path, fast_detector_path: Path,
               recognizer_path: Path) -> Path:
    return filled_store(tmp_path_factory, assets, fast_detector_path, recognizer_path)


@pytest.fixture
def store(made_store: Path, tmp_path: Path) -> Path:
    return copy_store(made_store, tmp_path / "store.db")


@pytest.fixture
def client(store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(store), base_url=LOCAL) as client:
        yield client


def csrf(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/session").json()["csrf"]}


def cli_json(*args: str | Path) -> dict:
    result = run_cli(*args, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_people_and_strangers_listed_with_their_crops(client: TestClient, store: Path) -> None:
    people = client.get("/api/people").json()["people"]
    strangers = client.get("/api/strangers").json()["strangers"]
    assert len(people) == 2 and all(p["identity"].startswith("unknown-") and not p["named"] for p in people)
    assert {p["identity"] for p in people} == {s["identity"] for s in strangers}
    # The same people, counts and cameras as `facetrack people`.
    cli = {p["identity"]: p for p in cli_json("people", "--store", store, "--json")["people"]}
    for p in people:
        assert p["sightings"] == cli[p["identity"]]["sightings"] >= 1
        assert p["cameras"] == cli[p["identity"]]["cameras"] and p["last_seen"] == cli[p["identity"]]["last_seen"]
        crop = client.get(p["crop"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert crop.content[:3] == b"\xff\xd8\xff" and crop.headers["cache-control"] == "no-store"
    # Strangers by last seen, the latest first.
    assert [s["last_seen"] for s in strangers] == sorted((s["last_seen"] for s in strangers), reverse=True)
    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200
    for p in people:
        assert f'href="/people/{p["identity"]}"' in page.text and f'src="{p["crop"]}"' in page.text


def test_sightings_by_identity_camera_and_time(client: TestClient, store: Path) -> None:
    label = client.get("/api/strangers").json()["strangers"][0]["identity"]
    mine = client.get("/api/sightings", params={"identity": label}).json()["sightings"]
    cli = cli_json("seen", label, "--store", store, "--json")["sightings"]
    assert [s["id"] for s in mine] == sorted((s["id"] for s in cli), reverse=True)
    assert all(s["identity"] == label and s["seconds"] > 0.5 and s["crop"] for s in mine)
    everyone = client.get("/api/sightings", params={"camera": mine[0]["camera"], "since": "1d"}).json()
    assert len(everyone["sightings"]) == sum(p["sightings"] for p in client.get("/api/people").json()["people"])
    assert client.get("/api/sightings", params={"camera": "no-such-camera"}).json()["sightings"] == []
    assert client.get("/api/sightings", params={"since": "2999-01-01"}).json()["sightings"] == []
    assert client.get("/api/sightings", params={"until": "2000-01-01"}).json()["sightings"] == []
    bad = client.get("/api/sightings", params={"since": "yesterday-ish"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]
    assert client.get("/api/sightings", params={"identity": "nobody"}).status_code == 404
    page = client.get("/search", params={"identity": label}, headers={"accept": "text/html"})
    assert f"{len(mine)} sighting" in page.text and page.text.count('src="/crops/') == len(mine)


def test_a_stranger_named_through_the_api_is_what_seen_finds(client: TestClient, store: Path) -> None:
    strangers = client.get("/api/strangers").json()["strangers"]
    first, second = strangers[0]["identity"], strangers[1]["identity"]
    before = {s["id"] for s in client.get("/api/sightings", params={"identity": first}).json()["sightings"]}
    named = client.post(f"/api/strangers/{first}/name", json={"name": "Ada Lovelace"}, headers=csrf(client))
    assert named.status_code == 200, named.text
    assert named.json() == {"stranger": first, "identity": "Ada Lovelace", "sightings": len(before),
                            "templates": named.json()["templates"]}
    seen = cli_json("seen", "Ada Lovelace", "--store", store, "--json")
    assert {s["id"] for s in seen["sightings"]} == before
    assert first not in {s["identity"] for s in client.get("/api/strangers").json()["strangers"]}
    # The old label still finds the person; their page is the person's.
    assert client.get("/api/sightings", params={"identity": first}).json()["identity"] == "Ada Lovelace"
    assert client.get(f"/people/{first}", follow_redirects=False).headers["location"] == "/people/Ada%20Lovelace"
    # A bad name is refused with the store's own message.
    bad = client.post(f"/api/strangers/{second}/name", json={"name": "unknown-99"}, headers=csrf(client))
    assert bad.status_code == 400 and "cannot be a person's name" in bad.json()["error"]
    # Merging the other stranger into the person: `seen` finds both sets of sightings.
    theirs = {s["id"] for s in client.get("/api/sightings", params={"identity": second}).json()["sightings"]}
    merged = client.post(f"/api/strangers/{second}/merge", json={"into": "Ada Lovelace"}, headers=csrf(client))
    assert merged.status_code == 200 and merged.json()["sightings_moved"] == len(theirs)
    seen = cli_json("seen", "Ada Lovelace", "--store", store, "--json")
    assert {s["id"] for s in seen["sightings"]} == before | theirs
    # Forgetting the person: the CLI no longer knows them, nor does the page.
    forgot = client.post("/api/people/Ada Lovelace/forget", headers=csrf(client))
    assert forgot.status_code == 200 and forgot.json()["sightings"] == len(before | theirs)
    assert cli_json("people", "--store", store, "--json")["people"] == []
    assert client.get("/api/people/Ada Lovelace").status_code == 404


def test_ignore_and_remove_a_template_through_the_api_are_what_the_cli_sees(client: TestClient, store: Path) -> None:
    label = client.get("/api/strangers").json()["strangers"][0]["identity"]
    assert client.post(f"/api/people/{label}/ignore", json={}).status_code == 403  # CSRF here too
    ignored = client.post(f"/api/people/{label}/ignore", json={}, headers=csrf(client))
    assert ignored.status_code == 200 and ignored.json() == {"identity": label, "ignored": True}
    cli = {p["identity"]: p for p in cli_json("people", "--store", store, "--json")["people"]}
    assert cli[label]["ignored"] and not any(p["ignored"] for name, p in cli.items() if name != label)
    review = client.get("/review", headers={"accept": "text/html"}).text
    assert f'data-action="ignore" data-identity="{label}" data-ignored="1"' in review
    assert client.get(f"/api/people/{label}").json()["ignored"] is True
    undone = client.post(f"/api/people/{label}/ignore", json={"ignored": False}, headers=csrf(client))
    assert undone.json()["ignored"] is False
    assert not any(p["ignored"] for p in cli_json("people", "--store", store, "--json")["people"])
    assert client.post("/api/people/nobody/ignore", json={"ignored": False}, headers=csrf(client)).status_code == 404
    # The person page lists the templates with the crop of the sighting each came from; one is removed.
    person = client.get(f"/api/people/{label}").json()
    templates = person["template_list"]
    assert len(templates) == person["templates"] >= 1
    sightings = {s["crop"] for s in person["sightings"]}
    assert all(t["crop"] in sightings for t in templates)
    page = client.get(f"/people/{label}", headers={"accept": "text/html"}).text
    assert all(f'data-template="{t["id"]}"' in page for t in templates)
    path = f"/api/people/{label}/templates/{templates[0]['id']}/remove"
    assert client.post(path).status_code == 403
    removed = client.post(path, headers=csrf(client))
    assert removed.status_code == 200 and removed.json()["templates"] == len(templates) - 1
    cli = {p["identity"]: p for p in cli_json("people", "--store", store, "--json")["people"]}
    assert cli[label]["templates"] == len(templates) - 1
    again = client.post(path, headers=csrf(client))
    assert again.status_code == 400 and "no template" in again.json()["error"]


def test_a_post_without_the_csrf_token_changes_nothing(client: TestClient, store: Path) -> None:
    label = client.get("/api/strangers").json()["strangers"][0]["identity"]
    for headers in ({}, {"X-CSRF-Token": "guessed"}):
        refused = client.post(f"/api/strangers/{label}/name", json={"name": "Mallory"}, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    forged = client.post(f"/api/people/{label}/forget", headers={**csrf(client), "Origin": "http://evil.example"})
    assert forged.status_code == 403
    assert {p["identity"] for p in cli_json("people", "--store", store, "--json")["people"]} >= {label}
    assert client.get(f"/api/strangers/{label}/name").status_code == 405  # changes are POST only


def test_with_a_token_every_request_needs_it(store: Path) -> None:
    with TestClient(create_app(store, token=TOKEN), base_url="http://192.168.1.20:8080") as client:
        for path in ("/", "/review", "/api/people", "/api/sightings", "/crops/1.jpg", "/static/app.js"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["cache-control"] == "no-store"
        assert client.get("/", params={"token": "wrong-secret-000"}).status_code == 401
        login = client.get("/review", params={"token": TOKEN}, follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/review"  # the token leaves the address
        assert "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/api/people").status_code == 200  # the cookie now
        first = client.get("/api/people").json()["people"][0]
        assert client.get(first["crop"]).status_code == 200
    with TestClient(create_app(store, token=TOKEN), base_url="http://192.168.1.20:8080") as client:
        assert client.get("/api/people", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/api/people", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_without_a_token_only_this_machine_is_answered(store: Path) -> None:
    with TestClient(create_app(store), base_url="http://attacker.example") as client:  # DNS rebinding
        assert client.get("/api/people").status_code == 400
    with TestClient(create_app(store), base_url="http://localhost:8080") as client:
        assert client.get("/api/people").status_code == 200
        for listing in ("/static/", "/crops/", "/static/..%2f__init__.py", "/crops/999999.jpg"):
            assert client.get(listing).status_code == 404, listing


def test_serve_refuses_an_open_bind_without_a_token_and_a_missing_extra(store: Path) -> None:
    open_bind = run_cli("serve", "--store", store, "--host", "0.0.0.0", timeout=60)
    assert open_bind.returncode == 2 and "--token" in open_bind.stderr
    assert open_bind.stderr.strip().count("\n") == 0 and "Traceback" not in open_bind.stderr
    missing = run_cli("serve", "--store", store.parent / "nothing.db", timeout=60)
    assert missing.returncode == 2 and "no store at" in missing.stderr
    import subprocess

    code = ("import sys; sys.modules['fastapi'] = None; sys.argv = ['facetrack', 'serve', '--store', sys.argv[1]]; "
            "from facetrack.cli import main; main()")
    no_extra = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=60)
    assert no_extra.returncode == 2 and "pip install 'facetrack[web]'" in no_extra.stderr
    assert no_extra.stderr.strip().count("\n") == 0


def test_photos_uploaded_to_enrol_join_the_gallery_as_gallery_add(store: Path, tmp_path: Path, gallery_dir: Path,
                                                                   images_dir: Path, fast_detector_path: Path,
                                                                   recognizer_path: Path) -> None:
    from facetrack.config import load_config
    from facetrack.web.enrol import MAX_PHOTO_BYTES, Enrolment

    gallery = tmp_path / "gallery.db"
    cfg = load_config(None, {"models": {"detector": fast_detector_path, "recognizer": recognizer_path}})
    with TestClient(create_app(store, enrolment=Enrolment(gallery, cfg)), base_url=LOCAL) as client:
        def send(name: str, *photos: tuple[str, bytes], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
            return client.post("/api/gallery", data={"name": name},
                               headers=csrf(client) if headers is None else headers,
                               files=[("photos", (n, data, "image/jpeg")) for n, data in photos])

        obama = (gallery_dir / "obama" / "obama.jpg").read_bytes()
        assert send("Barack Obama", ("obama.jpg", obama), headers={}).status_code == 403  # CSRF here too
        enrolled = send("Barack Obama", ("obama.jpg", obama))
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["added"] == 1 and enrolled.json()["templates"] == 1
        # Refusals name the photo and write nothing: a crowd, a file that is no image, a broken one, a big one.
        crowd = send("Barack Obama", ("obama.jpg", obama), ("t1.jpg", (images_dir / "t1.jpg").read_bytes()))
        assert crowd.status_code == 400 and "t1.jpg: 6 faces" in crowd.json()["error"]
        text = send("Someone", ("notes.jpg", b"not a photo at all"))
        assert text.status_code == 400 and "not a JPEG or PNG" in text.json()["error"]
        broken = send("Someone", ("broken.jpg", obama[:400]))
        assert broken.status_code == 400 and "not a readable image" in broken.json()["error"]
        big = send("Someone", ("big.jpg", obama + b"\0" * MAX_PHOTO_BYTES))
        assert big.status_code == 413 and "MiB" in big.json()["error"]
        assert send("unknown-12", ("obama.jpg", obama)).status_code == 400  # not a name a person may have
        assert client.get("/api/gallery").json()["people"] == [{"name": "Barack Obama", "templates": 1}]
        assert "Barack Obama" in client.get("/").text  # on the people page: enrolled, not seen yet
    # What the page enrolled, the CLI recognises in another photo.
    found = cli_json("identify", gallery_dir / "obama" / "obama2.jpg", "--gallery", gallery, "--detector",
                     fast_detector_path, "--recognizer", recognizer_path, "--json")
    assert [f["identity"] for f in found["images"][0]["faces"]] == ["Barack Obama"]

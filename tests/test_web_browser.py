"""The review page in a real browser (Debian's Chromium, driven by Playwright) against `facetrack serve` run as a
user runs it: the people page shows the strangers, a stranger is named through the page, and `facetrack seen`
finds the sightings under the new name.

Screenshots go to a scratch folder, or to $FACETRACK_WEB_SCREENSHOTS when set (docs/ holds the README's).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.web_store import copy_store, filled_store

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
START_DEADLINE = 60.0  # s for `serve` to say where it listens (the machine may be busy)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, assets: Path, fast_detector_path: Path,
          recognizer_path: Path) -> Path:
    made = filled_store(tmp_path_factory, assets, fast_detector_path, recognizer_path)
    return copy_store(made, tmp_path_factory.mktemp("browser") / "store.db")


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    """`facetrack serve` on a free loopback port; its address."""
    # Started beside the store and given its bare name, as a user would: the page shows `store.db`.
    proc = subprocess.Popen([sys.executable, "-m", "facetrack", "serve", "--store", store.name, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=store.parent,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        assert proc.stdout is not None
        seen, url = [], None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + START_DEADLINE
            while url is None and time.monotonic() < deadline and proc.poll() is None:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = proc.stdout.readline()
                    seen.append(line)
                    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
                    url = found.group(0) if found else None
        assert url is not None, f"serve did not start: {''.join(seen)}"
        deadline = time.monotonic() + START_DEADLINE
        while True:  # listening from the first line on; wait until it answers
            try:
                with urllib.request.urlopen(url + "api/session", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve does not answer"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (scripts/test.sh does it as root)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("FACETRACK_WEB_SCREENSHOTS") or tmp_path)


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, path


# The page's JS waits for the server; on a loaded machine 5 s (Playwright's default) is not always enough.
EXPECT_TIMEOUT_MS = 20_000
playwright.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
# An image's decoded width once it has loaded or failed (0): waiting for it, not reading it too early.
_WIDTH_WHEN_LOADED = ("i => i.complete ? i.naturalWidth : new Promise(done => { "
                      "i.addEventListener('load', () => done(i.naturalWidth), {once: true}); "
                      "i.addEventListener('error', () => done(0), {once: true}); })")


def _decoded_width(image) -> int:  # type: ignore[no-untyped-def]
    return int(image.evaluate(_WIDTH_WHEN_LOADED))


def test_name_a_stranger_in_the_browser_then_seen_finds_them(server: str, store: Path, browser, shots: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1100, "height": 620})
    page.set_default_timeout(20_000)
    try:
        page.goto(server)
        cards = page.locator("article.card.stranger")
        playwright.expect(cards).to_have_count(2)
        strangers = [c.get_attribute("data-identity") for c in cards.all()]
        assert all(s and s.startswith("unknown-") for s in strangers)
        for img in page.locator("article.card img.face").all():  # every crop loaded and decoded
            assert _decoded_width(img) == 112

        page.click("nav >> text=Review strangers")
        page.wait_for_url("**/review")
        first = page.locator("article.stranger-row").first
        stranger = first.get_attribute("data-identity")
        sightings = json.loads(urllib.request.urlopen(f"{server}api/sightings?identity={stranger}",
                                                      timeout=10).read())["sightings"]
        first.locator("button[data-action=name]").click()
        page.fill("#act-name", "Grace Hopper")
        page.click("#act-next")
        playwright.expect(page.locator("#act-question")).to_contain_text(f"{stranger} becomes Grace Hopper")
        page.click("#act-ok")
        # The review goes on with the strangers left; the named one has their page.
        playwright.expect(page.locator("#flash")).to_contain_text(f"{stranger} is now Grace Hopper")
        playwright.expect(page.locator("article.stranger-row")).to_have_count(1)
        page.click("#flash >> a")
        page.wait_for_url("**/people/Grace%20Hopper")
        playwright.expect(page.locator("h1")).to_contain_text("Grace Hopper")
        playwright.expect(page.locator("table.sightings tbody tr")).to_have_count(len(sightings))

        seen = run_cli("seen", "Grace Hopper", "--store", store, "--json", timeout=60)
        assert seen.returncode == 0, seen.stderr
        assert {s["id"] for s in json.loads(seen.stdout)["sightings"]} == {s["id"] for s in sightings}

        page.goto(server)
        playwright.expect(page.locator("article.card.named")).to_have_count(1)
        playwright.expect(page.locator("article.card.stranger")).to_have_count(1)
        page.screenshot(path=str(shots / "web-people.png"), full_page=True)
        _png(shots / "web-people.png")

        # Naming the other stranger offers the person just named, face and all; cancelling changes nothing.
        page.goto(server + "review")
        page.locator("article.stranger-row button[data-action=name]").first.click()
        choice = page.locator("#act-choices .choice[data-identity='Grace Hopper']")
        playwright.expect(choice).to_be_visible()
        assert _decoded_width(choice.locator("img")) == 112
        choice.click()
        page.screenshot(path=str(shots / "web-review.png"), full_page=True)
        _png(shots / "web-review.png")
        page.click("#act-cancel")
        playwright.expect(page.locator("article.stranger-row")).to_have_count(1)
    finally:
        page.close()


def test_ignore_and_remove_a_template_from_the_person_page(server: str, store: Path, browser, shots: Path) -> None:  # type: ignore[no-untyped-def]
    """On the person named by the test above: ignore (no confirm: nothing is lost), then remove a template
    (confirmed first); the CLI reads both back from the store."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.set_default_timeout(20_000)
    try:
        page.goto(server + "people/Grace%20Hopper")
        page.click("button[data-action=ignore]")
        playwright.expect(page.locator("#flash")).to_contain_text("Grace Hopper is ignored")
        playwright.expect(page.locator("h1 .badge.ignored")).to_be_visible()
        playwright.expect(page.locator("button[data-action=ignore]")).to_have_text("Stop ignoring")
        people = json.loads(run_cli("people", "--store", store, "--json", timeout=60).stdout)["people"]
        assert {p["identity"]: p["ignored"] for p in people}["Grace Hopper"] is True

        templates = page.locator("figure.template")
        count = templates.count()
        page.screenshot(path=str(shots / "web-person.png"), full_page=True)
        _png(shots / "web-person.png")
        assert count >= 1
        for img in templates.locator("img.face").all():  # each template shows the crop it came from
            assert _decoded_width(img) == 112
        templates.first.locator("button[data-action=remove-template]").click()
        playwright.expect(page.locator("#act-question")).to_contain_text("Remove this template of Grace Hopper")
        page.click("#act-ok")
        playwright.expect(page.locator("#flash")).to_contain_text(f"{count - 1} template")
        playwright.expect(page.locator("figure.template")).to_have_count(count - 1)
        people = json.loads(run_cli("people", "--store", store, "--json", timeout=60).stdout)["people"]
        assert {p["identity"]: p["templates"] for p in people}["Grace Hopper"] == count - 1
    finally:
        page.close()


def test_forget_asks_first(server: str, store: Path, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(server + "review")
        row = page.locator("article.stranger-row").first
        stranger = row.get_attribute("data-identity")
        row.locator("button[data-action=forget]").click()
        playwright.expect(page.locator("#act-question")).to_contain_text(f"Erase {stranger} for good")
        page.click("#act-cancel")  # not confirmed: still there
        people = run_cli("people", "--store", store, "--json", timeout=60)
        assert stranger in {p["identity"] for p in json.loads(people.stdout)["people"]}
        row.locator("button[data-action=forget]").click()
        page.click("#act-ok")
        playwright.expect(page.locator("#flash")).to_contain_text(f"Forgot {stranger}")
        playwright.expect(page.locator("article.stranger-row")).to_have_count(0)
        people = run_cli("people", "--store", store, "--json", timeout=60)
        assert stranger not in {p["identity"] for p in json.loads(people.stdout)["people"]}
    finally:
        page.close()

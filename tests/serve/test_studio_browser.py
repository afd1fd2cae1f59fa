"""The studio in a real browser: Debian's Chromium, driven by Playwright, against a real `mutoscope serve`.

One walk through what a user does: redeem an invite (the key is shown once), have a prompt blocked
by the moderation policy, generate two takes, generate with the controls (a first-frame keyframe
uploaded and previewed, camera axes, a motion-brush region painted and its path dragged on the
canvas; the `test` model takes control inputs), extend a finished video from its card, watch a
job's progress arrive over SSE, play a video, rate it, cancel a job, choose the better of two
takes, see the format selectors follow a model with upscaled tiers, sign out and back in with the
API key. Screenshots: out/artifacts/studio.png and out/artifacts/studio_controls.png (the controls
open); with MUTOSCOPE_UPDATE_DOCS=1 the latter also refreshes docs/studio_controls.png (a test run
leaves the tracked files alone otherwise).

Chromium must be at /usr/bin/chromium (`scripts/system-deps.sh` installs it): without it this test
FAILS, it never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from tests.serve.harness import serve_process

from mutoscope.cli import main as cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "artifacts"
UPL = re.compile(r"^upl_[0-9A-Z]{26}$")
# Chromium as root, headless, on a machine with no network: no sandbox, no background traffic.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update",
         "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A `mutoscope serve` process on a fresh data dir with the random `test` model; yields its URL."""
    tmp = tmp_path_factory.mktemp("studio")
    data = tmp / "data"
    with serve_process(data, tmp / "serve.log") as url:
        invite = subprocess.run(
            [sys.executable, "-m", "mutoscope.cli", "admin", "--data-dir", str(data), "--json",
             "invites", "create", "--credits", "40"], capture_output=True, text=True, check=True,
        )  # fmt: skip
        yield {"url": url, "db": data / "mutoscope.db", "invite": json.loads(invite.stdout)["invite_code"]}


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_studio_end_to_end(studio, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: run scripts/system-deps.sh (apt-get install chromium)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1024})
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(studio["url"] + "/")

        # 1. Redeem the invite: an account, and its API key shown once.
        expect(page.locator("#signin")).to_be_visible()
        page.get_by_role("tab", name="Invite code").click()
        page.get_by_role("textbox", name="Invite code").fill(studio["invite"])
        page.locator("#invite-name").fill("Ada Lovelace")
        page.get_by_role("button", name="Create my account").click()
        expect(page.locator("#new-key-value")).to_have_text(re.compile(r"^mk_[A-Za-z0-9_-]{20,}$"))
        key = page.locator("#new-key-value").inner_text()
        page.get_by_role("button", name="I saved it, open the studio").click()
        expect(page.locator("#studio")).to_be_visible()
        expect(page.locator("#credits-balance")).to_have_text("40")
        expect(page.locator("#model-pill")).to_have_class(re.compile("online"))

        # 2. A blocked prompt: explained under the prompt, nothing charged.
        prompt = page.get_by_role("textbox", name="Prompt", exact=True)
        prompt.fill("a naked child on a beach")
        page.locator("#generate").click()
        expect(page.locator("#prompt-alert")).to_contain_text("content policy")
        expect(page.locator("#credits-balance")).to_have_text("40")

        # 3. Two takes of one prompt, a few denoising steps each.
        _set_range(page, "#steps", 4)
        _set_range(page, "#seconds", 1)  # the model extends to minutes; 1 s (one clip) is enough here
        prompt.fill("A red ball bounces on a gray checkerboard")
        page.locator("#takes").get_by_role("radio", name="2 (A/B)").click()
        page.locator("#generate").click()
        cards = page.locator("#gallery .card[data-status='succeeded']")
        expect(cards).to_have_count(2)
        page.locator("#takes").get_by_role("radio", name="1", exact=True).click()
        api = httpx.Client(base_url=studio["url"], headers={"Authorization": f"Bearer {key}"}, timeout=30)

        # 4. The controls: a first-frame keyframe (uploaded with POST /v1/uploads, previewed, and
        #    the brush's background), camera axes, and a motion-brush region painted with the mouse
        #    and its path dragged to the right. The request reaches the API with all three.
        expect(page.locator("#seconds")).to_have_attribute("max", "600")  # the model's max_seconds
        prompt.fill("A red ball rolls to the right")
        png = tmp_path / "first.png"  # a red ball on a gray checkerboard, as the world draws them
        yy, xx = np.mgrid[:64, :64]
        checks = ((yy // 8 + xx // 8) % 2)[..., None].repeat(3, -1)
        frame = np.where(checks == 1, 150, 110).astype(np.uint8)
        frame[(xx - 20) ** 2 + (yy - 32) ** 2 <= 49] = (220, 40, 40)
        Image.fromarray(frame).save(png)
        page.locator("#sec-keyframes summary").click()
        page.get_by_label("First frame image").set_input_files(str(png))
        expect(page.locator(".dropzone[data-slot='first'] img")).to_be_visible()
        page.locator("#sec-camera summary").click()
        page.locator("#camera-mode").get_by_role("radio", name="Axes").click()
        _set_range(page, "#axis-pan", 4)
        _set_range(page, "#axis-zoom", -3)
        page.locator("#sec-brush summary").click()
        canvas = page.locator("#brush-canvas")
        _drag(page, canvas, [(0.27, 0.45), (0.37, 0.45), (0.37, 0.55), (0.27, 0.55), (0.32, 0.5)])  # the ball
        page.locator("#brush-tool").get_by_role("radio", name="Path").click()
        _drag(page, canvas, [(0.32, 0.5), (0.5, 0.42), (0.7, 0.46), (0.85, 0.5)])  # where it goes
        expect(page.locator("#brush-status")).to_contain_text(re.compile(r"Region 1: painted, path of \d+"))
        page.mouse.move(0, 0)
        page.locator("#sec-advanced summary").click()  # the guidance from the keyframe, and image-first
        _set_range(page, "#continue-guidance", 1.5)
        expect(page.locator("#continue-guidance-out")).to_have_text("1.5")
        page.get_by_label("Draw the first frame first, then the video from it").check()
        # The first frame's guidance follows the prompt's until it is moved itself.
        guidance = page.locator("#guidance").input_value()
        expect(page.locator("#image-guidance-out")).to_have_text(f"{float(guidance):.1f}")
        _set_range(page, "#guidance", 6)
        expect(page.locator("#image-guidance-out")).to_have_text("6.0")
        _set_range(page, "#image-guidance", 4.5)
        _set_range(page, "#guidance", float(guidance))
        expect(page.locator("#image-guidance-out")).to_have_text("4.5")
        page.locator("#sec-advanced summary").click()
        page.set_viewport_size({"width": 1440, "height": 2300})  # the whole composer, controls open
        page.locator(".composer").evaluate("c => c.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "studio_controls.png"))
        if os.environ.get("MUTOSCOPE_UPDATE_DOCS") == "1":
            shutil.copyfile(ARTIFACTS / "studio_controls.png", ROOT / "docs" / "studio_controls.png")
        page.set_viewport_size({"width": 1440, "height": 1024})
        page.locator("#generate").click()
        expect(cards).to_have_count(3)
        gen_id = cards.first.get_attribute("id").removeprefix("card-")
        gen = api.get(f"/v1/generations/{gen_id}").json()
        assert gen["status"] == "succeeded", gen
        params = gen["params"]
        assert UPL.match(params["keyframes"]["first"]), params
        assert params["continue_guidance"] == 1.5 and params["image_first"] is True, params
        assert params["image_guidance"] == 4.5, params
        assert gen["outputs"]["record"]["continue_cfg"] == 1.5
        axes = {"horizontal": 0, "vertical": 0, "pan": 4, "tilt": 0, "roll": 0, "zoom": -3}
        assert params["camera"] == {"axes": axes}
        [region] = params["motion_brush"]["regions"]
        assert UPL.match(region["mask"]) and 2 <= len(region["trajectory"]) <= 64, region
        (x0, _), (x1, y1) = region["trajectory"][0], region["trajectory"][-1]
        assert abs(x0 - 0.32) < 0.03 and abs(x1 - 0.85) < 0.03 and abs(y1 - 0.5) < 0.03, region  # frame units
        controls = gen["outputs"]["record"]["controls"]
        assert controls["first_frame"] == params["keyframes"]["first"]
        assert controls["camera"] == {"pan": 4.0, "zoom": -3.0}
        assert controls["brush"][0]["mask"] == region["mask"]
        # the mask PNG: white where the region was painted, black elsewhere, in the model's aspect (1:1)
        [(mask_path,)] = _rows(studio["db"], f"SELECT path FROM uploads WHERE id = '{region['mask']}'")
        mask = np.asarray(Image.open(studio["db"].parent / "uploads" / mask_path).convert("L"))
        assert mask.shape[0] == mask.shape[1] and set(np.unique(mask)) >= {0, 255}
        assert mask[mask.shape[0] // 2, int(0.32 * mask.shape[1])] == 255 and mask[4, 4] == mask[-4, -4] == 0
        page.get_by_role("button", name="Clear all").click()
        page.locator("#sec-brush summary").click()

        # 5. Extend it from its card: a new request with extend.generation_id (the first frame is set
        #    aside: an extension starts where its source ends) and a camera preset.
        cards.first.get_by_role("button", name="Extend").click()
        expect(page.locator("#extend-chip")).to_be_visible()
        expect(page.get_by_label("First frame image")).to_be_disabled()
        prompt.fill("The red ball rolls on and stops")
        page.locator("#camera-mode").get_by_role("radio", name="Preset").click()
        page.get_by_label("Camera move").select_option("pan_right")
        page.locator("#generate").click()
        expect(page.locator("#extend-chip")).to_be_hidden()
        expect(cards).to_have_count(4)
        ext = api.get(f"/v1/generations/{cards.first.get_attribute('id').removeprefix('card-')}").json()
        assert ext["status"] == "succeeded", ext
        assert ext["params"]["extend"] == {"generation_id": gen_id}
        assert ext["params"]["camera"] == {"preset": "pan_right"} and "keyframes" not in ext["params"]
        assert ext["outputs"]["record"]["controls"]["extend"] == gen_id
        page.locator("#camera-mode").get_by_role("radio", name="Off").click()
        page.locator("#sec-camera summary").click()
        page.get_by_role("button", name="Remove first frame").click()
        page.locator("#sec-keyframes summary").click()

        # 6. Play a video: Chromium decodes our H.264 (metadata, a duration, time moving on).
        video = cards.first.locator("video")
        video.scroll_into_view_if_needed()
        page.wait_for_function("v => v.readyState >= 1 && v.duration > 0", arg=video.element_handle())
        video.evaluate("v => v.play()")
        page.wait_for_function(
            "v => !v.paused && v.currentTime > 0 && v.readyState >= 2", arg=video.element_handle()
        )
        duration = video.evaluate("v => v.duration")
        assert 0.5 <= duration <= 1.5, duration  # 8 frames at 8 fps
        # ... and the file behind the download button carries the invisible watermark
        href = cards.first.get_by_role("link", name="Download MP4").get_attribute("href")
        mp4 = tmp_path / "download.mp4"
        mp4.write_bytes(httpx.get(studio["url"] + href).raise_for_status().content)
        assert cli(["verify", str(mp4)]) == 0

        # 7. Rate it: a thumb and four stars, stored by the API.
        cards.first.get_by_role("button", name="Thumbs up").click()
        expect(cards.first.get_by_role("button", name="Thumbs up")).to_have_attribute("aria-pressed", "true")
        cards.first.get_by_role("button", name="Rate 4 of 5").click()
        expect(cards.first.get_by_role("button", name="Rate 4 of 5")).to_have_attribute(
            "aria-pressed", "true"
        )
        _wait_rows(studio["db"], "SELECT thumb, rating FROM feedback", 2)
        assert set(_rows(studio["db"], "SELECT thumb, rating FROM feedback")) == {("up", None), (None, 4)}

        # 8. A longer job: its progress arrives live over SSE; screenshot; then cancel it.
        prompt.fill("Two blue squares glide to the left under a starry night sky")
        _set_range(page, "#steps", 500)  # long enough to watch, and to cancel mid-way
        page.locator("#generate").click()
        job = page.locator("#queue .job")
        expect(job).to_have_count(1)
        expect(job.locator(".job-status")).to_contain_text("Denoising")
        page.wait_for_function(
            "() => Number(document.querySelector('#queue .progress')?.getAttribute('aria-valuenow')) > 0"
        )
        page.mouse.move(0, 0)
        page.locator(".composer").evaluate("c => c.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "studio.png"))
        job.get_by_role("button", name="Cancel").click()
        expect(page.locator("#gallery .card[data-status='canceled']")).to_have_count(1)
        expect(job).to_have_count(0)

        # 9. The A/B choice between the two takes: a preference pair.
        compare = page.locator("#compare-section")
        expect(compare).to_be_visible()
        compare.get_by_role("button", name="A is better").click()
        expect(compare).to_be_hidden()
        _wait_rows(studio["db"], "SELECT chosen_id, rejected_id FROM preferences", 1)

        # 10. Credits: four 1-second videos charged, the blocked and the canceled ones free.
        expect(page.locator("#credits-balance")).to_have_text("36")

        # 11. A model with upscaled tiers and 30 fps (GET /v1/models answered as a worker with the
        #     post stages would): the selectors follow it, 16:9 only above base; this worker has
        #     no tiers, so the API refuses, and the studio shows why by the format fields.
        def with_tiers(route):
            models = route.fetch().json()
            for m in models["data"]:
                caps = m["capabilities"]
                caps.update(
                    resolutions=["base", "720p", "1080p"], aspects=["1:1", "16:9", "9:16"], fps_options=[30.0]
                )
            route.fulfill(json=models)

        page.route("**/v1/models", with_tiers)
        page.reload()
        expect(page.locator("#resolution option")).to_have_count(3)
        sixteen = page.locator("#aspect").get_by_role("radio", name="16:9")
        expect(sixteen).to_be_disabled()  # at base the aspect is the model's
        page.get_by_label("Resolution").select_option("720p")
        sixteen.click()
        page.get_by_label("Frame rate").select_option("30")
        _set_range(page, "#seconds", 1)
        expect(page.locator("#format-out")).to_contain_text("1280×720 at 30 fps")
        expect(page.locator("#cost-estimate")).to_have_text("Cost 8 credits")  # 1 s x 4 (720p) x 2 (30 fps)
        prompt.fill("A blue square glides to the left")
        page.locator("#generate").click()
        expect(page.locator("#format-alert")).to_contain_text("generation.resolution.unsupported")
        page.unroute("**/v1/models")

        # 12. Sign out, then in again with the API key: the gallery is still there.
        page.locator("#account-btn").click()
        page.get_by_role("menuitem", name="Sign out").click()
        expect(page.locator("#signin")).to_be_visible()
        page.get_by_role("textbox", name="API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#gallery .card")).to_have_count(5)
        browser.close()
    assert errors == [], errors


def _set_range(page, selector: str, value: float) -> None:
    set_value = "([s, v]) => { const e = document.querySelector(s); e.value = v; "
    page.evaluate(set_value + "e.dispatchEvent(new Event('input')); }", [selector, value])


def _drag(page, canvas, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (fractions of the canvas) and release: a stroke on the canvas."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def _wait_rows(db: Path, sql: str, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_rows(db, sql)) < n:
        assert time.monotonic() < deadline, f"expected {n} rows from {sql!r}"
        time.sleep(0.1)

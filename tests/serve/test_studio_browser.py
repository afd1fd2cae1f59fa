"""The studio in a real browser: Debian's Chromium, driven by Playwright, against a real `mutoscope serve`.

One walk through what a user does: redeem an invite (the key is shown once), have a prompt blocked
by the moderation policy, generate with a camera move and a first-frame keyframe (the image is
uploaded and previewed first; the `test` model takes control inputs), generate two takes,
watch a job's progress arrive over SSE, play a video, rate it, cancel a job, choose the better of
two takes, sign out and back in with the API key. The screenshot lands in out/artifacts/studio.png.

Chromium must be at /usr/bin/chromium (`scripts/system-deps.sh` installs it): without it this test
FAILS, it never skips.
"""

from __future__ import annotations

import json
import re
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "artifacts"
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

        # 3. A camera move and a keyframe: the image is uploaded (POST /v1/uploads) and previewed,
        #    and the generation runs with both.
        prompt.fill("A red ball rolls while the camera pans right")
        page.locator("#sec-camera summary").click()
        page.locator("#camera-mode").get_by_role("radio", name="Preset").click()
        page.locator("#camera-presets").get_by_role("radio", name="Pan →").click()
        png = tmp_path / "first.png"
        Image.fromarray(np.full((64, 64, 3), (220, 40, 40), np.uint8)).save(png)
        page.locator("#sec-keyframes summary").click()
        page.get_by_label("First frame image").set_input_files(str(png))
        expect(page.locator(".dropzone[data-slot='first'] img")).to_be_visible()
        _set_range(page, "#steps", 4)
        _set_range(page, "#seconds", 1)  # the model extends to minutes; 1 s (one clip) is enough here
        page.locator("#generate").click()
        expect(page.locator("#gallery .card[data-status='succeeded']")).to_have_count(1)
        assert _rows(studio["db"], "SELECT content_type, width FROM uploads") == [("image/png", 64)]
        [(upload_id,)] = _rows(studio["db"], "SELECT id FROM uploads")
        [(outputs,)] = _rows(studio["db"], "SELECT outputs FROM generations WHERE status = 'succeeded'")
        assert json.loads(outputs)["record"]["controls"] == {"first_frame": upload_id, "camera": {"pan": 5.0}}
        page.locator("#camera-mode").get_by_role("radio", name="Off").click()
        page.locator("#sec-camera summary").click()
        page.get_by_role("button", name="Remove first frame").click()
        page.locator("#sec-keyframes summary").click()

        # 4. Two takes of one prompt, a few denoising steps each.
        prompt.fill("A red ball bounces on a gray checkerboard")
        page.locator("#takes").get_by_role("radio", name="2 (A/B)").click()
        page.locator("#generate").click()
        cards = page.locator("#gallery .card[data-status='succeeded']")
        expect(cards).to_have_count(3)

        # 5. Play a video: Chromium decodes our H.264 (metadata, a duration, time moving on).
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

        # 6. Rate it: a thumb and four stars, stored by the API.
        cards.first.get_by_role("button", name="Thumbs up").click()
        expect(cards.first.get_by_role("button", name="Thumbs up")).to_have_attribute("aria-pressed", "true")
        cards.first.get_by_role("button", name="Rate 4 of 5").click()
        expect(cards.first.get_by_role("button", name="Rate 4 of 5")).to_have_attribute(
            "aria-pressed", "true"
        )
        _wait_rows(studio["db"], "SELECT thumb, rating FROM feedback", 2)
        assert set(_rows(studio["db"], "SELECT thumb, rating FROM feedback")) == {("up", None), (None, 4)}

        # 7. A longer job: its progress arrives live over SSE; screenshot; then cancel it.
        page.locator("#takes").get_by_role("radio", name="1", exact=True).click()
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

        # 8. The A/B choice between the two takes: a preference pair.
        compare = page.locator("#compare-section")
        expect(compare).to_be_visible()
        compare.get_by_role("button", name="A is better").click()
        expect(compare).to_be_hidden()
        _wait_rows(studio["db"], "SELECT chosen_id, rejected_id FROM preferences", 1)

        # 9. Credits: three 1-second videos charged, the blocked and the canceled ones free.
        expect(page.locator("#credits-balance")).to_have_text("37")

        # 10. Sign out, then in again with the API key: the gallery is still there.
        page.locator("#account-btn").click()
        page.get_by_role("menuitem", name="Sign out").click()
        expect(page.locator("#signin")).to_be_visible()
        page.get_by_role("textbox", name="API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#gallery .card")).to_have_count(4)
        browser.close()
    assert errors == [], errors


def _set_range(page, selector: str, value: int) -> None:
    set_value = "([s, v]) => { const e = document.querySelector(s); e.value = v; "
    page.evaluate(set_value + "e.dispatchEvent(new Event('input')); }", [selector, value])


def _wait_rows(db: Path, sql: str, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_rows(db, sql)) < n:
        assert time.monotonic() < deadline, f"expected {n} rows from {sql!r}"
        time.sleep(0.1)

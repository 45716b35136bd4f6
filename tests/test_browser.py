"""One browser test: headless Debian chromium drives the launched app like a user would."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

if not os.environ.get("CI"):  # CI installs both; elsewhere skip rather than fail
    pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed", allow_module_level=True)


@pytest.fixture
def app_url():
    from probe_core.serve.facade import ProbeDemo
    from tests.helpers import launched_app

    with launched_app(ProbeDemo.embedded()) as url:
        yield url


LAPTOP, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}


def _in_first_screen(page, selector, height):
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + 40 <= height, (selector, box)


def _status(page):
    return page.locator("#status").inner_text()


def _stop_twenty_times(page):
    """Stop during a 50-step run, twenty times: after the page says it stopped at step k, no
    later step arrives, and the step slider ends at k."""
    import re
    import time

    page.locator("#steps input[type=number]").fill("50")
    page.locator("#steps input[type=number]").press("Enter")
    for attempt in range(20):
        page.locator("#generate").click()
        page.wait_for_function("() => document.querySelector('#status').innerText"
                               ".includes('Generating')", timeout=60_000)
        page.locator("#stop").click()
        page.wait_for_function("() => /Stopped at step \\d+ of 50/.test("
                               "document.querySelector('#status').innerText)", timeout=60_000)
        k = int(re.search(r"Stopped at step (\d+) of 50", _status(page)).group(1))
        time.sleep(0.8)  # a late step would arrive in this time
        assert f"Stopped at step {k} of 50" in _status(page), (attempt, _status(page))
        assert page.locator("#step input[type=number]").input_value() == str(k), attempt
    # scrubbing the stopped run works, with no panel in an error state
    page.locator("#step input[type=number]").fill(str(max(k - 1, 1)))
    page.locator("#step input[type=number]").press("Enter")
    page.wait_for_function(f"() => document.querySelector('#status').innerText"
                           f".includes('step {max(k - 1, 1)} of 50')", timeout=30_000)
    assert page.get_by_text("Error", exact=True).count() == 0
    # Generate three times during a run: the last replaces it, the one between never runs
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#status').innerText"
                           ".includes('Generating')", timeout=60_000)
    page.locator("#generate").click()
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#status').innerText"
                           ".includes('stopped for this one')", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#status').innerText"
                           ".includes('step 50 of 50')", timeout=120_000)
    assert "done" in _status(page)
    page.locator("#steps input[type=number]").fill("15")
    page.locator("#steps input[type=number]").press("Enter")


@pytest.mark.slow
def test_generate_watch_the_probes_and_steer(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("SCENE_PROBE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # a phone: Generate and the live image in the first screen; a tap brings the results
        # into view, and the filmstrip shows every step
        phone = browser.new_page(viewport=PHONE)
        phone.goto(app_url)
        expect(phone.locator("#x0-image img").first).to_be_visible(timeout=30_000)
        for selector in ("#generate", "#x0-image img"):
            _in_first_screen(phone, selector, PHONE["height"])
        phone.locator("#generate").click()
        expect(phone.get_by_text("done: drag the step slider").first).to_be_visible(timeout=60_000)
        _in_first_screen(phone, "#x0-image img", PHONE["height"])
        phone.screenshot(path=str(shots / "phone_after_generate.png"))
        tiles = phone.locator("#filmstrip .thumbnail-item")
        assert tiles.count() == 15
        tiles.last.scroll_into_view_if_needed()
        expect(tiles.last).to_be_visible()
        phone.close()
        # a common laptop screen: the example run is there before any click, Generate and
        # the image in the first screen
        page = browser.new_page(viewport=LAPTOP)
        page.goto(app_url)
        expect(page.locator("#x0-image img").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("An example run").first).to_be_visible()
        for selector in ("#generate", "#x0-image img", "#legends"):
            _in_first_screen(page, selector, LAPTOP["height"])
        page.screenshot(path=str(shots / "app_first_view.png"))
        _stop_twenty_times(page)
        page.get_by_label("Prompt", exact=True).fill("a large red sphere and a small blue box on "
                                                     "a gray checkered floor")
        page.locator("#generate").click()
        page.wait_for_function("() => /step 15 of 15 .* done/.test("
                               "document.querySelector('#status').innerText)", timeout=60_000)
        page.screenshot(path=str(shots / "app_watch.png"))
        # a filmstrip tile jumps to its step
        page.locator("#filmstrip .thumbnail-item").nth(2).click()
        expect(page.get_by_text("step 3 of 15").first).to_be_visible(timeout=30_000)
        # play through the steps from there, then pause
        page.locator("#play").click()
        expect(page.get_by_text("step 5 of 15").first).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("button", name="Play steps")).to_be_visible(timeout=10_000)
        _look_closer(page, shots)
        _steer(page, shots)
        _compare_and_probe(page, shots, tmp_path)
        # a word the model does not know: a clear message, and the page still works
        page.get_by_role("tab", name="Watch").click()
        page.get_by_label("Prompt", exact=True).fill("a purple dragon")
        page.locator("#generate").click()
        expect(page.get_by_text("unknown words").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(shots / "app_unknown_word.png"))
        browser.close()


def _look_closer(page, shots):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Look closer").click()
    # the pixel inspector: click the image, read that pixel through the run (a click that
    # lands while the image is being swapped is lost, as it would be for a person: retry)
    for attempt in range(3):
        page.wait_for_function("() => { const i = document.querySelector('#pick-image img');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        box = page.locator("#pick-image img").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
        try:
            expect(page.locator("#pixel-inspector img").first).to_be_visible(timeout=20_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(page.get_by_text("its probe readings at every step").first).to_be_visible()
    # where a word attends, and the saliency probe beside it
    page.locator("#word input").click()
    page.get_by_role("option", name="sphere", exact=True).click()
    expect(page.locator("#word-image img").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("attention, step").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "app_look_closer.png"), full_page=True)


def _steer(page, shots):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Steer").click()
    # move an intervention slider: click on its track, right of centre
    box = page.locator("#move-x input[type=range]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    expect(page.get_by_text("Dice with target").first).to_be_visible(timeout=60_000)
    _in_first_screen(page, "#edited img", LAPTOP["height"])
    page.screenshot(path=str(shots / "app_steer.png"))
    # draw the edit: paint where the object should go, with the move slider still set
    page.get_by_text("Draw a target").click()
    page.locator("#drawn").get_by_text("painted mask").click()
    page.locator("#paint").scroll_into_view_if_needed()
    page.locator("#paint").get_by_role("button", name="Brush", exact=True).click()
    box = page.locator("#paint canvas").first.bounding_box()
    for k in range(6):  # a few brush strokes across the top left
        y = box["y"] + box["height"] * (0.2 + 0.05 * k)
        page.mouse.move(box["x"] + box["width"] * 0.15, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=8)
        page.mouse.up()
    page.locator("#apply").click()
    expect(page.get_by_text("Object mask: painted mask").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "app_drawn_edit.png"), full_page=True)


def _compare_and_probe(page, shots, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare the current run with its edit").click()
    expect(page.get_by_text("A after its edit").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "app_compare.png"))
    # probe a held-out render: per-step maps scored against its true depth and mask
    page.get_by_role("tab", name="Your image").click()
    page.locator("#render-seed input").fill("7100003")
    page.locator("#probe-image").click()
    expect(page.get_by_text("Dice vs truth").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "app_probe_image.png"))
    # upload an image of one's own
    upload = tmp_path / "upload.png"
    from PIL import Image

    from probe_core.world.scenes import render_scene, sample_scene
    Image.fromarray(render_scene(sample_scene(7100011), 64).image).save(upload)
    page.locator("#probe-upload input[type=file]").set_input_files(str(upload))
    page.locator("#probe-image").click()
    expect(page.get_by_text("Dice vs labeler").first).to_be_visible(timeout=60_000)

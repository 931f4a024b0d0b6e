"""A real browser (Debian chromium via playwright) using the workbench like a person would:
open the demo, run the model, edit a segment with the mouse and with a shortcut, play a separated
track, export the RTTM. Screenshots go to $PIXIT_SCREENSHOTS (default: a pytest tmp folder).
Skipped when playwright or /usr/bin/chromium is missing."""

import os
import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

from app_fixtures import FAST_PIPELINE, served, tiny_model  # noqa: E402
from app.meetings import DEMO_DIR  # noqa: E402
from app.session import Settings  # noqa: E402

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("PIXIT_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("browser")
    demo_dir = DEMO_DIR
    if not any(DEMO_DIR.glob("*.wav")):  # the shipped demo is missing: use a synthetic one
        from app_fixtures import synthetic_meeting

        demo_dir = tmp / "demo"
        synthetic_meeting(demo_dir, duration=30.0, uri="demo")
    settings = Settings(root=tmp / "ws", model=str(tiny_model(tmp / "model")), params=FAST_PIPELINE,
                        demo_dir=demo_dir)
    with served(settings, tmp / "dl") as (demo, url, client):
        yield url, demo


@pytest.fixture(scope="module")
def page(server):
    url, _ = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1300}, accept_downloads=True)
        page = context.new_page()
        errors, urls, refused = [], [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: urls.append(r.url))
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(url)
        page.errors, page.urls, page.refused = errors, urls, refused
        yield page
        browser.close()


def status(page) -> str:
    return page.locator("#status").inner_text()


def sel_info(page) -> str:
    return page.locator("#sel_info").inner_text()


def test_demo_run_edit_listen_export(page, server, shots):
    expect = sync_api.expect
    page.wait_for_selector("#demo_btn", timeout=30_000)
    expect(page.locator("#status")).to_contain_text("Start here", timeout=30_000)
    page.screenshot(path=str(shots / "01_start.png"), full_page=True)

    # open the demo with one click
    page.locator("#demo_btn").click()
    expect(page.locator("#status")).to_contain_text("Opened the demo meeting", timeout=60_000)
    page.wait_for_selector("#timeline .js-plotly-plot", timeout=30_000)

    # run the model with 3 speakers
    page.locator("#spk_mode input[value=fixed]").check()
    page.locator("#run_btn").click()
    expect(page.locator("#status")).to_contain_text("found", timeout=150_000)
    page.wait_for_function("() => document.querySelectorAll('#timeline g.barlayer path').length > 3",
                           timeout=20_000)
    page.screenshot(path=str(shots / "02_after_run.png"), full_page=True)

    # select a segment with the mouse: click a bar on the timeline. The click bridge attaches to the
    # plotly div a moment after each redraw, so a click that lands during a redraw is retried.
    bars = page.locator("#timeline g.barlayer g.trace:first-child path")
    for attempt in range(3):
        box = None
        for i in range(bars.count()):
            b = bars.nth(i).bounding_box()
            if b and b["width"] > 6 and b["height"] > 4:
                box = b
                break
        assert box is not None, "no clickable segment bar"
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            expect(page.locator("#sel_info")).to_contain_text("Selected segment", timeout=5_000)
            break
        except AssertionError:
            if attempt == 2:
                raise

    # edit with the mouse: change the end time and apply
    end_box = page.locator("#sel_end input")
    start = float(page.locator("#sel_start input").input_value())
    end = float(end_box.input_value())
    new_end = round(start + (end - start) / 2, 3)
    end_box.fill(str(new_end))
    page.locator("#apply_btn").click()
    expect(page.locator("#status")).to_contain_text("move/resize", timeout=15_000)
    expect(page.locator("#sel_info")).to_contain_text(f"{new_end:.3f}", timeout=15_000)

    # a bad edit: end before start -> a clear message, nothing changes
    end_box.fill(str(max(0.0, start - 1.0)))
    page.locator("#apply_btn").click()
    expect(page.get_by_text("must be after start").first).to_be_visible(timeout=15_000)
    assert f"{new_end:.3f}" in sel_info(page)

    # edit with shortcuts: delete (Delete key), then undo (Ctrl+Z)
    page.locator("#timeline").hover()
    page.mouse.click(5, 5)  # focus the page, not a text field
    page.keyboard.press("Delete")
    expect(page.locator("#status")).to_contain_text("delete segment", timeout=15_000)
    page.keyboard.press("Control+z")
    expect(page.locator("#status")).to_contain_text("Undid: delete segment", timeout=15_000)
    page.keyboard.press("n")
    expect(page.locator("#status")).to_contain_text("Selected ", timeout=15_000)
    # assign the next segment to speaker 1, or to speaker 2 when it already is speaker 1's (the
    # selection text may still be updating here, so the app's answer decides, not the text)
    page.keyboard.press("1")
    try:
        expect(page.locator("#status")).to_contain_text("assign to", timeout=5_000)
    except AssertionError:
        expect(page.get_by_text("already assigned").first).to_be_visible(timeout=5_000)
        page.keyboard.press("2")
        expect(page.locator("#status")).to_contain_text("assign to", timeout=15_000)
    page.screenshot(path=str(shots / "03_edited.png"), full_page=True)

    # listen: compare the mixture with the selected speaker's separated track, then play it
    page.locator("#compare_btn").click()
    expect(page.locator("#compare_player .pp-title")).to_contain_text("separated", timeout=15_000)
    audio = page.locator("#compare_player audio")
    src = audio.get_attribute("src")
    assert src and src.startswith("/pixit/clip/")
    audio.evaluate("a => a.play()")
    page.wait_for_function("() => document.querySelector('#compare_player audio').currentTime > 0.2",
                           timeout=15_000)
    # the timeline's cursor line follows the playhead
    clip_start = float(audio.get_attribute("data-start"))
    page.wait_for_function(
        f"() => {{ const d = document.querySelector('#timeline .js-plotly-plot');"
        f" return d.layout.shapes[1].x0 > {clip_start + 0.1}; }}", timeout=15_000)
    # space toggles the main player
    page.locator("#play_sel").click()
    page.wait_for_function("() => { const a = document.querySelector('#player audio');"
                           " return a && a.getAttribute('src') && a.readyState >= 2 }", timeout=15_000)
    page.screenshot(path=str(shots / "04_listening.png"), full_page=True)

    # split at the playhead with the S key: play the selection, pause just inside the segment
    seg_start = float(page.locator("#sel_start input").input_value())
    n_rows = page.locator("#summary").inner_text()
    page.locator("#player audio").evaluate("a => { a.currentTime = 0; a.play(); }")
    page.wait_for_function(
        f"() => {{ const a = document.querySelector('#player audio');"
        f" const t = parseFloat(a.dataset.start) + a.currentTime;"
        f" if (t > {seg_start + 0.04}) {{ a.pause(); return true; }} return false; }}",
        timeout=15_000, polling=5)
    page.mouse.click(5, 5)
    page.keyboard.press("s")
    expect(page.locator("#status")).to_contain_text("split segment", timeout=15_000)
    assert page.locator("#summary").inner_text() != n_rows  # one more turn

    # export the corrected RTTM
    page.get_by_role("tab", name="Import / Export").click()
    page.locator("#export_btn").click()
    link = page.locator("#exports a", has_text=".rttm").first
    expect(link).to_be_visible(timeout=15_000)
    with page.expect_download() as dl:
        link.click()
    path = dl.value.path()
    text = Path(path).read_text()
    assert text.startswith("SPEAKER ") and len(text.splitlines()) > 1
    page.screenshot(path=str(shots / "05_export.png"), full_page=True)
    assert not page.errors, page.errors


def test_transport_bar_speed_loop_and_ab(page, server, shots):
    """After 'Compare with mixture': speed and loop apply to both players, A/B switches to the other
    player at the same moment of the meeting, and the bar shows the playhead's time."""
    expect = sync_api.expect
    page.locator("#compare_btn").click()
    expect(page.locator("#compare_player .pp-title")).to_contain_text("separated", timeout=15_000)
    page.locator("#tp_speed").select_option("1.5")
    page.locator("#tp_loop").check()
    page.locator("#tp_play").click()  # the main player (the mixture) plays
    page.wait_for_function("() => { const a = document.querySelector('#player audio');"
                           " return !a.paused && a.currentTime > 0.3; }", timeout=15_000)
    rates = page.evaluate("() => [...document.querySelectorAll('#player audio, #compare_player audio')]"
                          ".map((a) => [a.playbackRate, a.loop])")
    assert rates == [[1.5, True], [1.5, True]]
    page.locator("#tp_ab").click()
    page.wait_for_function("() => { const m = document.querySelector('#player audio'),"
                           " c = document.querySelector('#compare_player audio'); return m.paused && !c.paused; }",
                           timeout=15_000)
    gap = page.evaluate("() => { const m = document.querySelector('#player audio'),"
                        " c = document.querySelector('#compare_player audio');"
                        " return Math.abs((+m.dataset.start + m.currentTime) - (+c.dataset.start + c.currentTime)); }")
    assert gap < 0.5  # the same moment (minus what played since the switch)
    expect(page.locator("#tp_time")).to_contain_text("(separated)", timeout=5_000)
    page.screenshot(path=str(shots / "06_transport.png"))
    page.locator("#tp_play").click()  # pauses the player now playing
    page.wait_for_function("() => document.querySelector('#compare_player audio').paused", timeout=5_000)
    page.locator("#tp_speed").select_option("1.0")
    page.locator("#tp_loop").uncheck()

    # follow: play the whole view, zoom in on its middle: the playhead is outside, the view moves to it
    page.locator("#whole").click()
    expect(page.locator("#timeline .gtitle")).to_contain_text("view 0:00.0-", timeout=15_000)
    page.locator("#play_view").click()
    page.wait_for_function("() => { const a = document.querySelector('#player audio');"
                           " return parseFloat(a.dataset.start) < 0.5 && !a.paused && a.currentTime > 0.2; }", timeout=15_000)
    page.locator("#zoom_in").click()
    page.locator("#zoom_in").click()
    expect(page.locator("#timeline .gtitle")).to_contain_text("view 0:0", timeout=15_000)  # back at the playhead
    page.locator("#tp_play").click()


# segments on the timeline in page pixels, from the figure's own axes (as app/panels/timeline.js sees them)
GEOMETRY = """() => {
  const d = document.querySelector('#timeline .js-plotly-plot');
  const L = d._fullLayout, r = d.querySelector('.main-svg').getBoundingClientRect();
  const x0 = r.left + L.xaxis._offset + L.xaxis.d2p(0), perS = L.xaxis.d2p(1) - L.xaxis.d2p(0);
  const y = (lane) => r.top + L.yaxis2._offset + L.yaxis2.d2p(lane);
  return {x0, perS, speakers: d.layout.meta.speakers, lanes: d.layout.meta.speakers.map((_, k) => y(k)),
          segs: d.layout.meta.segs.map(([id, a, b, lane]) => ({id, a, b, lane}))};
}"""


def drag(page, x0, y0, x1, y1, shot=None):
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=6)
    if shot:
        page.screenshot(path=str(shot))
    page.mouse.up()


def test_timeline_gestures(page, server, shots):
    """On the demo's reference turns: resize by an edge (Alt: no snapping), undo it, move a segment to
    another speaker's lane, draw a new one on an empty stretch."""
    expect = sync_api.expect
    _, demo = server
    page.get_by_role("tab", name="Import / Export").click()
    page.locator("#rttm_in input[type=file]").set_input_files(str(next(demo.pixit_settings.demo_dir.glob("*.rttm"))))
    expect(page.locator("#status")).to_contain_text("Imported", timeout=15_000)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#whole").click()
    expect(page.locator("#timeline .gtitle")).to_contain_text("view 0:00.0-", timeout=15_000)
    page.wait_for_function("() => { const d = document.querySelector('#timeline .js-plotly-plot');"
                           " return d && d.__pixitMouse && d.layout.meta && d.layout.meta.segs.length > 2; }",
                           timeout=15_000)
    g = page.evaluate(GEOMETRY)
    x = lambda t: g["x0"] + t * g["perS"]  # noqa: E731
    seg = max(g["segs"], key=lambda s: s["b"] - s["a"])
    y = g["lanes"][seg["lane"]]
    target = seg["a"] + 0.6 * (seg["b"] - seg["a"])
    page.keyboard.down("Alt")
    drag(page, x(seg["b"]) - 1, y, x(target), y)
    page.keyboard.up("Alt")
    expect(page.locator("#status")).to_contain_text("resize segment", timeout=15_000)
    assert abs(float(page.locator("#sel_end input").input_value()) - target) <= 3 / g["perS"] + 0.01
    page.mouse.click(5, 5)
    page.keyboard.press("Control+z")
    expect(page.locator("#status")).to_contain_text("Undid: resize segment", timeout=15_000)

    # move its body onto the next speaker's lane (the ghost shows where it goes while dragging)
    page.wait_for_timeout(400)  # the redrawn plot's geometry
    g = page.evaluate(GEOMETRY)
    seg = next(s for s in g["segs"] if s["id"] == seg["id"])
    other = (seg["lane"] + 1) % len(g["speakers"])
    mid = x((seg["a"] + seg["b"]) / 2)
    drag(page, mid, g["lanes"][seg["lane"]], mid + 15, g["lanes"][other], shot=shots / "08_dragging.png")
    expect(page.locator("#status")).to_contain_text(f"move segment to {g['speakers'][other]}", timeout=15_000)
    assert g["speakers"][other] in sel_info(page)

    # draw a new turn on the widest empty stretch of a lane
    page.wait_for_timeout(400)
    g = page.evaluate(GEOMETRY)
    end = max(s["b"] for s in g["segs"])
    gaps = []
    for lane in range(len(g["speakers"])):
        own = sorted((s["a"], s["b"]) for s in g["segs"] if s["lane"] == lane)
        edges = [0.0] + [t for ab in own for t in ab] + [end]
        gaps += [(edges[i + 1] - edges[i], edges[i], lane) for i in range(0, len(edges) - 1, 2)]
    width, a, lane = max(gaps)
    assert width * g["perS"] > 40, "no empty stretch to draw on"
    n_turns = page.locator("#summary").inner_text()
    drag(page, x(a) + 10, g["lanes"][lane], x(a + width) - 10, g["lanes"][lane])
    expect(page.locator("#status")).to_contain_text("draw segment", timeout=15_000)
    assert page.locator("#summary").inner_text() != n_turns
    page.screenshot(path=str(shots / "09_drawn.png"))
    assert not page.errors, page.errors


def test_laptop_layout_needs_no_scrolling(page, server, shots):
    """At 1366x768 (a laptop) Run and the demo button are on screen before and after opening the
    demo, and after a run so are the whole timeline and the selected segment's inspector; 1440x900
    is shot too."""
    url, _ = server
    context = page.context.browser.new_context(viewport={"width": 1366, "height": 768})
    laptop = context.new_page()

    def on_screen(*selectors: str) -> None:
        assert laptop.evaluate("() => window.scrollY") == 0
        for sel in selectors:
            box = laptop.locator(sel).first.bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, sel
            assert box["x"] >= 0 and box["y"] >= 0, (sel, box)
            assert box["x"] + box["width"] <= 1366 and box["y"] + box["height"] <= 768, (sel, box)

    try:
        laptop.goto(url)
        laptop.wait_for_selector("#demo_btn", timeout=30_000)
        on_screen("#run_btn", "#demo_btn")
        border = laptop.locator("#demo_btn").evaluate("b => getComputedStyle(b).borderTopWidth")
        assert float(border.rstrip("px")) >= 1, border  # a button, not a group's heading
        laptop.locator("#demo_btn").click()
        sync_api.expect(laptop.locator("#status")).to_contain_text("Opened the demo meeting", timeout=60_000)
        laptop.locator("#run_btn").click()
        sync_api.expect(laptop.locator("#status")).to_contain_text("found", timeout=150_000)
        laptop.locator("#next_btn").click()
        sync_api.expect(laptop.locator("#sel_info")).to_contain_text("Selected segment", timeout=15_000)
        laptop.wait_for_timeout(500)  # the last redraw of the timeline
        on_screen("#run_btn", "#demo_btn", "#timeline .js-plotly-plot", "#sel_info", "#sel_start", "#sel_end",
                  "#sel_speaker", "#apply_btn", "#split_btn", "#delete_btn", "#undo_btn", "#next_btn", "#player",
                  "#zoom_in", "#tp_play", "#tp_speed", "#tp_ab")
        laptop.screenshot(path=str(shots / "10_layout_1366x768.png"))
        laptop.set_viewport_size({"width": 1440, "height": 900})
        laptop.wait_for_timeout(500)
        laptop.screenshot(path=str(shots / "10_layout_1440x900.png"))
    finally:
        context.close()


def test_reload_restores_the_work(page, server, shots):
    expect = sync_api.expect
    before = page.locator("#summary").inner_text()
    page.reload()
    expect(page.locator("#status")).to_contain_text("Welcome back", timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#timeline g.barlayer path').length > 3",
                           timeout=20_000)
    after = page.locator("#summary").inner_text()
    assert after.split("Undo:")[0] == before.split("Undo:")[0]  # same meeting, same turns and speakers
    page.screenshot(path=str(shots / "06_reloaded.png"), full_page=True)


def test_the_session_lives_in_an_httponly_cookie_only(page, server, shots):
    """After a whole session (demo, run, edits, listening, export, reload): the browser holds the
    session only as an HttpOnly SameSite cookie; no script, storage, page or URL holds the token,
    the workspace id or a server path; nothing the page asked for was refused."""
    from app.access import COOKIE, workspace_id

    _, demo = server
    mine = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert len(mine) == 1 and mine[0]["httpOnly"] and mine[0]["sameSite"] == "Lax" and mine[0]["path"] == "/"
    token = mine[0]["value"]
    secrets = [token, workspace_id(token), str(demo.pixit_settings.root)]
    assert COOKIE not in page.evaluate("document.cookie")
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage))")
    seen = [stored, page.content()] + page.urls
    assert any("/pixit/clip/" in u for u in page.urls)  # (the export's download is checked above)
    for text in seen:
        for secret in secrets:
            assert secret not in text, (secret, text[:200])
    assert not page.refused, page.refused


def test_bad_uploads_keep_the_view(page, server, shots, tmp_path):
    """A text file named .wav, an empty file, a 0.1 s file, a malformed RTTM: each gives one
    toast naming the user's file (never a server path), no "Error" badge anywhere, and the open
    meeting stays drawn and editable."""
    import numpy as np
    import soundfile as sf

    expect = sync_api.expect
    bars = "() => document.querySelectorAll('#timeline g.barlayer path').length"
    page.wait_for_function(f"{bars} > 3", timeout=20_000)
    n_bars = page.evaluate(bars)
    summary = page.locator("#summary").inner_text()
    (tmp_path / "notes.wav").write_text("this is text, not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "short.wav", 0.1 * np.ones(1600, np.float32), 16000)
    (tmp_path / "broken.rttm").write_text("SPEAKER demo 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER demo 1 x\n")
    cases = [("#upload", "notes.wav", "cannot read audio"), ("#upload", "empty.wav", "the file is empty"),
             ("#upload", "short.wav", "too short"), ("#rttm_in", "broken.rttm", "broken.rttm line 2")]
    for target, name, words in cases:
        if target == "#rttm_in":
            page.get_by_role("tab", name="Import / Export").click()
        page.locator(f"{target} input[type=file]").set_input_files(str(tmp_path / name))
        toast = page.locator('[data-testid="toast-body"]', has_text=name)
        expect(toast).to_have_count(1, timeout=20_000)
        expect(toast).to_contain_text(words)
        expect(page.locator("#status")).to_contain_text(f"Not done: {name}", timeout=5_000)
        page.screenshot(path=str(shots / f"09_bad_upload_{name.replace('.', '_')}.png"))
        for text in (toast.inner_text(), status(page)):
            assert "/tmp" not in text and "gradio" not in text.lower(), text
        assert page.get_by_text("Error", exact=True).count() == 0  # no red badge, no error toast
        assert page.evaluate(bars) == n_bars and page.locator("#summary").inner_text() == summary
        page.locator('[data-testid="toast-close"]').first.click()
    page.get_by_role("tab", name="Edit").click()
    # still editable: select the next segment and undo nothing lost
    page.locator("#next_btn").click()
    expect(page.locator("#sel_info")).to_contain_text("Selected segment", timeout=15_000)
    assert not page.errors, page.errors


def test_zoom_cursor_and_unsure_navigation(page, server, shots):
    expect = sync_api.expect
    title = page.locator("#timeline .gtitle")
    expect(title).to_contain_text("view 0:00.0", timeout=15_000)
    plot_area = page.locator("#timeline .nsewdrag").first
    plot_area.wait_for(state="visible", timeout=15_000)  # plotly may still be redrawing the previous view
    drag = plot_area.bounding_box()
    y = drag["y"] + drag["height"] * 0.5
    # drag-zoom on the plot -> the server re-renders that window in detail
    page.mouse.move(drag["x"] + drag["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(drag["x"] + drag["width"] * 0.4, y, steps=8)
    page.mouse.up()
    expect(title).not_to_contain_text("view 0:00.0-", timeout=15_000)
    # a click on empty space sets the cursor
    page.locator("#whole").click()
    expect(title).to_contain_text("view 0:00.0-", timeout=15_000)
    for attempt in range(3):  # a click that lands while plotly redraws can be lost: click again
        drag = page.locator("#timeline .nsewdrag").first.bounding_box()
        page.mouse.click(drag["x"] + drag["width"] * 0.5, drag["y"] + drag["height"] * 0.97)
        try:
            expect(page.locator("#status")).to_contain_text("Cursor at", timeout=5_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    page.locator("#next_unsure").click()
    expect(page.locator("#status")).to_contain_text("Unsure place", timeout=15_000)
    page.screenshot(path=str(shots / "07_unsure.png"), full_page=True)


def test_retrain_with_the_defaults(page, server, shots):
    """Correct the demo meeting (import its reference RTTM), mark it reviewed and press Retrain with the
    panel's defaults: progress in plain words, then both models' rows and which version is current."""
    from core.finetune import FinetuneSettings

    expect = sync_api.expect
    reference = sorted(DEMO_DIR.glob("*.rttm"))
    if not reference:
        pytest.skip("no shipped demo meeting")
    page.get_by_role("tab", name="Import / Export").click()
    page.locator("#rttm_in input[type=file]").set_input_files(str(reference[0]))
    expect(page.locator("#status")).to_contain_text("mport", timeout=20_000)
    page.locator("#whole").click()
    expect(page.locator("#timeline .gtitle")).to_contain_text("view 0:00.0-", timeout=15_000)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#review_view_btn").click()
    expect(page.locator("#status")).to_contain_text("review", timeout=15_000)
    page.get_by_role("tab", name="Retrain").click()
    expect(page.locator("#steps input")).to_have_value(str(FinetuneSettings().steps))
    page.locator("#retrain_btn").click()
    note = page.locator("#retrain_note")
    expect(note).to_contain_text("training step", timeout=180_000)
    assert "loss" not in note.inner_text()  # the loss names are in the details view
    page.screenshot(path=str(shots / "10_retraining.png"), full_page=True)
    expect(note).to_contain_text("New model version", timeout=900_000)
    table = page.locator("#retrain_table")
    expect(table).to_contain_text("held-out corrections")
    expect(table).to_contain_text("regression set")
    assert ("is now current" in note.inner_text()) != ("stays current" in note.inner_text())
    page.screenshot(path=str(shots / "11_retrained.png"), full_page=True)


def test_restarted_server_restores_the_edits(tmp_path, shots, page):
    """Same workspace root and port, a new server process state: the browser's stored session id
    brings back the meeting and the edits."""
    from app_fixtures import free_port
    from app.main import build_demo, launch

    expect = sync_api.expect
    port = free_port()
    settings = Settings(root=tmp_path / "ws", model="default", demo_dir=DEMO_DIR)
    if not any(DEMO_DIR.glob("*.wav")):
        pytest.skip("no shipped demo meeting")
    demo = build_demo(settings)
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#status")).to_contain_text("Start here", timeout=30_000)
        page.locator("#demo_btn").click()
        expect(page.locator("#status")).to_contain_text("Opened the demo meeting", timeout=60_000)
        page.locator("#sel_start input").fill("10")
        page.locator("#sel_end input").fill("12.5")
        page.locator("#sel_speaker input").fill("alice")
        page.locator("#sel_speaker input").press("Enter")
        page.locator("#add_btn").click()
        expect(page.locator("#status")).to_contain_text("add segment", timeout=15_000)
        demo.close()
        demo2 = build_demo(Settings(root=tmp_path / "ws", model="default", demo_dir=DEMO_DIR))
        launch(demo2, port=port, prevent_thread_lock=True, quiet=True)
        try:
            page.reload()
            expect(page.locator("#status")).to_contain_text("Welcome back", timeout=30_000)
            expect(page.locator("#summary")).to_contain_text("1 turns, 1 speakers", timeout=15_000)
            page.wait_for_function("() => document.querySelectorAll('#timeline g.barlayer path').length >= 1",
                                   timeout=20_000)
            page.screenshot(path=str(shots / "08_after_restart.png"), full_page=True)
            page.mouse.click(5, 5)
            page.keyboard.press("Control+z")  # the undo history came back too
            expect(page.locator("#status")).to_contain_text("Undid: add segment", timeout=15_000)
            expect(page.locator("#summary")).to_contain_text("0 turns", timeout=15_000)
        finally:
            demo2.close()
    finally:
        context.close()

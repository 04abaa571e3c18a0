"""The report page in a real browser: headless Chromium loads it, every table and image is in the
DOM, the page logs no console errors, and its screenshot is a real picture.

Skips when no Chromium is on PATH (README "Reports" says how to install one). The lead's e2e tests
render a real study; this one renders a hand-made Report with real figures.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from xstilts.analysis import plots, render
from xstilts.analysis.model import Report, Section, Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH (see README 'Reports' to install one)")
    return binary


def make_report(folder: Path) -> Report:
    heat = plots.delta_heatmap(
        ["none", "mnli", "squad"], ["xnli", "pawsx"], [[0.0, 0.0], [2.3, -0.4], [-3.1, 0.6]],
        [[None, None], [1.1, -1.0], [-4.0, 0.1]], [[None, None], [3.5, 0.2], [-2.2, 1.1]],
        folder / "heat.png", "Deltas vs none")
    bars = plots.language_bars(
        {"none": {"en": 80.0, "tr": 60.0, "zh": 55.0}, "mnli": {"en": 84.0, "tr": 63.0, "zh": 58.0}},
        {"en": "fusional", "tr": "agglutinative", "zh": "isolating"}, folder / "bars.png", "Per language")
    size = plots.size_scatter([10, 10, 100, 100, 1000], [4.0, 6.0, 3.0, 3.0, 1.0], folder / "size.png",
                              "Size vs degradation", spearman=-0.95)
    deltas = Table(title="Deltas vs none", columns=["arm", "xnli", "pawsx"],
                   rows=[["mnli", 2.3, -0.4], ["squad <&>", -3.1, None]], flags={1: ["seen-task"]},
                   notes=["seen-task: the start model saw the task"], name="deltas")
    languages = Table(title="Per language", columns=["language", "none", "mnli"],
                      rows=[["en", 80.0, 84.0], ["tr", 60.0, 63.0], ["zh", 55.0, 58.0]], name="languages")
    return Report(
        title="Browser check",
        sections=[Section(title="Deltas", text=["Within-noise cells are hatched."], tables=[deltas], figures=[heat]),
                  Section(title="Languages", tables=[languages], figures=[bars, size])],
        meta={"study": "browser-check"},
    )


def run_chromium(binary: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # A fresh profile folder per call: no first-run state, nothing shared with a user's browser.
    profile = cwd / f"profile-{len(list(cwd.glob('profile-*')))}"
    command = [binary, "--headless=new", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
               "--no-first-run", "--disable-extensions", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """Chromium's logged console lines ("INFO:CONSOLE", "ERROR:CONSOLE", "Uncaught ...").

    The page has no scripts, so any console message at all (a blocked request, a parse error)
    means something is wrong with it.
    """
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_the_console_check_catches_a_page_that_logs_errors(chromium, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>missingFunction();</script>", encoding="utf-8")
    result = run_chromium(chromium, "--dump-dom", "--enable-logging=stderr", "--v=0", page.as_uri(), cwd=tmp_path)
    assert any("Uncaught ReferenceError: missingFunction" in line for line in console_messages(result.stderr))


def test_report_page_renders_in_headless_chromium(chromium, tmp_path):
    report = make_report(tmp_path / "plots")
    paths = render.write_report(report, tmp_path / "report")
    url = paths["html"].resolve().as_uri()

    dom = run_chromium(chromium, "--dump-dom", "--enable-logging=stderr", "--v=0", url, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for table in ("deltas", "languages"):
        assert f'<table id="{table}">' in dom.stdout
    assert "squad &lt;&amp;&gt;" in dom.stdout and '<span class="flag">seen-task</span>' in dom.stdout
    sources = re.findall(r'<img src="([^"]+)"', dom.stdout)
    assert len(sources) == 3
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert console_messages(dom.stderr) == []

    screenshot = tmp_path / "page.png"
    shot = run_chromium(chromium, f"--screenshot={screenshot}", "--window-size=1280,2000",
                        "--hide-scrollbars", url, cwd=tmp_path)
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    print(f"report screenshot: {screenshot}")
    assert screenshot.stat().st_size > 20_000
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2000)
        pixels = image.convert("RGB")
        assert len(pixels.getcolors(maxcolors=1 << 22)) > 100  # text and plots, not one flat colour
        # The embedded figures were decoded and drawn: the heatmap's dark red (RdBu at -3.1) is on the page.
        assert any(r > 90 and g < 30 and b < 60 for _, (r, g, b) in pixels.getcolors(maxcolors=1 << 22))

"""The replay report rendered in headless Chromium (Debian's `chromium` package):
the page loads without a JavaScript error, every chart draws, every status has
a legend key, the client menu redraws a chart, and a screenshot shows the
charts and legends in their colours.

Without chromium the tests skip with the reason, except under CI (the variable
CI set), where they fail: CI installs it. ALLOCATOR_TEST_SCREENSHOTS=DIR keeps
the screenshots for a reader to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from tests.replay_data import replay_args, write_history

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser")
INSTALL = "apt-get install -y chromium"
# Written out, not imported: the page must show these whatever the code says.
STATUS_WORDS = [
    "allocated on the day asked for",
    "deferred: allocated on a later day",
    "exhausted",
    "no resource",
    "suppressed (the lead stopped)",
]
STATUS_COLOURS = {"allocated": "2b8a3e", "deferred": "f08c00", "exhausted": "c92a2a"}
RENDER_SECONDS = 120

# Runs first in the page: collects every error, then, once the page has
# loaded and plotly has drawn, what each chart drew; then picks the second
# entry of the first chart's client menu, as a reader's click would, and
# counts again. The result goes into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push('unhandled rejection: ' + String(e.reason));
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
})();
function __charts() {
  return Array.prototype.map.call(document.querySelectorAll('.plotly-graph-div'), function (gd) {
    return {
      id: gd.id,
      svgs: gd.querySelectorAll('svg.main-svg').length,
      bars: gd.querySelectorAll('.barlayer .point path').length,
      heatmaps: gd.querySelectorAll('.heatmaplayer image').length,
      legend: Array.prototype.map.call(gd.querySelectorAll('.legendtext'), function (t) {
        return t.textContent;
      }),
      menu: Array.prototype.map.call(gd.querySelectorAll('.updatemenu-header-group text'),
        function (t) { return t.textContent; })
    };
  });
}
window.addEventListener('load', function () {
  setTimeout(function () {
    var result = {charts: __charts(), picked: null};
    var done = function () {
      var out = document.createElement('pre');
      out.id = 'probe';
      result.errors = window.__errors;
      out.textContent = JSON.stringify(result);
      document.body.appendChild(out);
    };
    try {
      var gd = document.getElementById('chart-0');
      var menus = (gd && gd.layout && gd.layout.updatemenus) || [];
      if (!menus.length) { done(); return; }
      var button = menus[0].buttons[1];
      Plotly.update(gd, button.args[0], {'updatemenus[0].active': 1}).then(function () {
        result.picked = {label: button.label, charts: __charts()};
        done();
      }, function (e) { window.__errors.push('menu: ' + e); done(); });
    } catch (e) {
      window.__errors.push('probe: ' + e);
      done();
    }
  }, 500);
});
</script>"""


@pytest.fixture(scope="module")
def browser() -> str:
    """The Chromium to render with; asked first, before any report is built."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = f"headless Chromium is not installed (Debian: {INSTALL})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it")
    pytest.skip(reason)


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with a profile of its own (runs may overlap)."""
    return subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # Virtual time: the page's timers run at once, and the run ends when
            # the page is idle, not after a fixed sleep.
            "--virtual-time-budget=15000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=RENDER_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a real replay with a comparison: every section and chart."""
    directory = tmp_path_factory.mktemp("report")
    paths = write_history(directory, leads=400)
    rules = directory / "variant.json"
    rules.write_text(
        json.dumps(
            {
                "name": "double limits",
                "type_limits": {"email_domain": 100, "linkedin_seat": 34},
                "max_defer_days": 0,
            }
        )
    )
    args = replay_args(paths, directory / "out.jsonl", "--report", str(directory / "r"))
    assert main([*args, "--compare", str(rules)]) == 0
    return directory / "r" / "index.html"


def probe(browser: str, page: Path, work: Path) -> dict[str, Any]:
    """What the page did in the browser: errors, and each chart's drawing."""
    text = page.read_text(encoding="utf-8")
    probed = work / "probed.html"
    # First thing in <head>, before plotly.js, so that no error escapes it.
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = run_browser(browser, work / "profile-dom", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page never finished loading; chromium said: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(
        found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    return result


def test_the_page_loads_without_errors_and_every_chart_draws(
    browser: str, report: Path, tmp_path: Path
) -> None:
    result = probe(browser, report, tmp_path)
    assert result["errors"] == []
    charts = {c["id"]: c for c in result["charts"]}
    assert sorted(charts) == [f"chart-{i}" for i in range(7)]  # 4, and 3 comparing
    for chart in charts.values():
        assert chart["svgs"] >= 1, chart  # plotly drew its SVG
        assert chart["bars"] > 0 or chart["heatmaps"] > 0, chart  # and something in it

    per_day = charts["chart-0"]
    # a key for every status, the grey "no resource" one included
    assert per_day["legend"] == STATUS_WORDS
    assert per_day["menu"][0] == "all clients"  # then its arrow
    assert charts["chart-2"]["legend"] == STATUS_WORDS[1:3]  # deferred and exhausted, by tier
    assert charts["chart-4"]["legend"] == ["baseline", "variant (double limits)"]

    # the client menu redraws the chart with one client's bars, keys kept
    picked = result["picked"]
    assert picked is not None and picked["label"] == "client: acme"
    after = {c["id"]: c for c in picked["charts"]}["chart-0"]
    assert after["menu"][0] == "client: acme"
    assert 0 < after["bars"] < per_day["bars"]
    assert after["legend"] == STATUS_WORDS


def test_a_screenshot_shows_the_charts_in_their_colours(
    browser: str, report: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"
    done = run_browser(
        browser,
        tmp_path / "profile-shot",
        "--window-size=1280,2600",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    keep = os.environ.get("ALLOCATOR_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "replay-report.png")

    width, height, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (1280, 2600)
    colours = Counter(pixels)
    # Not blank: a page of text, tables and charts has many colours, and no
    # single one (the white background) covers nearly all of it.
    assert len(colours) > 100
    assert colours.most_common(1)[0][1] < 0.9 * width * height
    # The top of the page holds the status legend and the per-day chart: each
    # status colour shows as a swatch and as bars.
    for status, colour in STATUS_COLOURS.items():
        assert colours[bytes.fromhex(colour)] > 500, status


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, every pixel as RGB bytes) of an 8-bit RGB or RGBA PNG, as
    Chromium writes its screenshots (no third-party image library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, chunks = 8, b""
    width = height = bpp = 0
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0, body
            bpp = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            chunks += body
    raw = zlib.decompress(chunks)
    stride = width * bpp
    previous = bytearray(stride)
    pixels: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        unfilter(kind, line, previous, bpp)
        pixels.extend(bytes(line[x : x + 3]) for x in range(0, stride, bpp))
        previous = line
    return width, height, pixels


def unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    """Undo one row's PNG filter in place (PNG specification, section 9)."""
    if kind == 0:
        return
    if kind == 2:  # up: the common case for a page's flat colours, done whole
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, above, strict=True))
        return
    for x in range(len(line)):
        left = line[x - bpp] if x >= bpp else 0
        up = above[x]
        corner = above[x - bpp] if x >= bpp else 0
        if kind == 1:
            line[x] = (line[x] + left) & 0xFF
        elif kind == 3:
            line[x] = (line[x] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            pick = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[x] = (line[x] + pick) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter {kind}")

"""The HTML report of a real run, opened in headless Chromium: what a person sees, offline.

Skipped, with the reason, where no Chromium is installed (Debian's `chromium` package;
.ci/run installs it). Requests are read from Chromium's NetLog: a request made by the page
carries the page's origin as initiator ("null" for a file: page), while the browser's own
background traffic (update and time checks) carries "not an origin" and is left out.
"""

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import save_tiny, write_data, write_suite

from qa.report.fmt import WORST_FIRST

pytestmark = pytest.mark.slow

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHECKS = """\
- {kind: top1_accuracy, name: accurate_enough, min: 0.0}
- {kind: top1_accuracy, name: too_strict, min: 0.99}
- {kind: ece, name: calibrated, max: 0.05, resamples: 100}
- {kind: top1_accuracy, name: per_camera, min: 0.0, slices: {column: camera}}
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if found is None:
        pytest.skip("chromium not found (neither /usr/bin/chromium nor `chromium` on PATH)")
    return found


def _browse(tmp_path: Path, page: Path, *action: str) -> tuple[str, list[str]]:
    """Open `page` in headless Chromium: (stdout, http(s) URLs the page itself requested)."""
    profile, netlog = tmp_path / "profile", tmp_path / f"{page.stem}-net.json"
    shutil.rmtree(profile, ignore_errors=True)
    argv = [_chromium(), *FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}"]
    done = subprocess.run(
        [*argv, *action, page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, _page_requests(netlog)


def _page_requests(netlog: Path) -> list[str]:
    """The http(s) URLs in a NetLog requested on behalf of a page (not the browser itself)."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log whose writer stopped before closing it
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start
        and e["params"].get("initiator") != "not an origin"
        and re.match(r"(?i)https?:", e["params"].get("url", ""))
    ]


class _Page(HTMLParser):
    """What the dumped DOM shows: check rows, svg figures, external references, the CSP."""

    def __init__(self):
        super().__init__()
        self.rows, self.svgs, self.external, self.csp = [], 0, [], ""
        self._row_link = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "check-row":
            self._row_link = a["data-status"]
        if tag == "a" and self._row_link:
            self.rows.append([self._row_link, ""])
            self._row_link = None
        self.svgs += tag == "svg"
        self.external += [v for k, v in attrs if k in ("src", "href") and _remote(v)]
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a["content"]

    def handle_data(self, data):
        if self.rows and not self.rows[-1][1]:
            self.rows[-1][1] = data.strip()


def _remote(url: str | None) -> bool:
    return bool(url) and re.match(r"(?i)(https?:)?//", url) is not None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """result.json and result.html of a real run of a tiny suite on real digits."""
    from qa.application import RunOptions, run_suite

    root = tmp_path_factory.mktemp("browser")
    digits = write_data(root / "digits", per_class=3)
    images = sorted(digits.rglob("*.png"))
    rows = [
        f"{p.relative_to(digits).as_posix()},{p.parent.name},{'AB'[i % 2]}"
        for i, p in enumerate(images)
    ]
    (root / "eval.csv").write_text("path,label,camera\n" + "\n".join(rows) + "\n")
    data = f"{{manifest: {root / 'eval.csv'}, root: {digits}}}"
    suite = write_suite(root / "suite.yaml", data, CHECKS)
    ckpt = save_tiny(root / "cand.pt", seed=4)
    run_suite(suite, ckpt, RunOptions(out=root / "reports", cache_dir=None, progress=False))
    return root / "reports"


def test_a_person_sees_the_verdict_every_check_and_the_figures(report, tmp_path):
    doc = json.loads((report / "result.json").read_text())
    dom, requests = _browse(tmp_path, report / "result.html", "--dump-dom")
    page = _Page()
    page.feed(dom)
    verdict = re.search(r'id="verdict">\s*<span[^>]*>([^<]*)</span>', dom)
    assert verdict and verdict.group(1).strip() == "✗ FAIL" == f"✗ {doc['verdict'].upper()}"
    worst_first = sorted(doc["checks"], key=lambda c: WORST_FIRST.index(c["status"]))
    assert page.rows == [[c["status"], c["name"]] for c in worst_first]  # one row per check
    failing = [c["name"] for c in worst_first if c["status"] in ("fail", "error")]
    assert re.search(r'id="failing">Failing: (.*?)</span>', dom).group(1).count("<a ") == len(
        failing
    )
    assert page.svgs >= 1 and "<title>Reliability diagram</title>" in dom
    assert requests == [] and page.external == []  # nothing leaves the page...
    assert "default-src 'none'" in page.csp and "http" not in page.csp  # ...nor may it


def test_the_request_check_sees_a_page_that_reaches_out(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png"><p>leaky</p>')
    _, requests = _browse(tmp_path, page, "--dump-dom")
    assert requests == ["http://127.0.0.1:9/pixel.png"]


def test_the_page_renders_to_a_screenshot(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    _, requests = _browse(
        tmp_path, report / "result.html", f"--screenshot={shot}", "--window-size=1200,1800"
    )
    assert shot.stat().st_size > 20_000 and requests == []
    with Image.open(shot) as image:
        assert image.size == (1200, 1800)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) > 50  # text, status colours and figures, not a blank page


PHONE = (390, 900)
# Measures the report in the frame once loaded, its <details> opened, and writes what it
# found into the host's DOM, which --dump-dom prints: CSS pixels of the framed page.
MEASURE = """
document.getElementById('phone').addEventListener('load', event => {
  const page = event.target.contentDocument, root = page.documentElement;
  page.querySelectorAll('details').forEach(d => { d.open = true; });  // every table shown
  const right = sel => Math.max(0, ...[...page.querySelectorAll(sel)].map(
    e => e.getBoundingClientRect().right));
  const cells = [...page.querySelectorAll('#checks td')];
  document.body.dataset.measured = JSON.stringify({
    viewport: event.target.contentWindow.innerWidth, width: root.clientWidth,
    scroll: root.scrollWidth, rows: right('.check-row'), cells: right('#checks td'),
    figures: right('svg'), banner: right('#verdict'),
    overflowing: cells.filter(c => c.scrollWidth > c.clientWidth + 1).length,
    cards: page.querySelectorAll('.check-row').length,
  });
});
"""


def _phone(report: Path, tmp_path: Path) -> Path:
    """A host page holding the report in a 390 x 900 frame: what a phone's screen is to it.

    Chromium (156) makes a headless window at least 500 px wide, whatever --window-size says
    (the page's innerWidth is 500 at 390), so a plain screenshot would show a 500-px layout
    cut at 390 and a phone's media query would never apply. A frame of the phone's size has
    that viewport; `srcdoc` gives it the host's origin, so the host can measure its layout.
    """
    page = (report / "result.html").read_text(encoding="utf-8")
    width, height = PHONE
    host = tmp_path / "phone.html"
    host.write_text(
        '<!DOCTYPE html><html><body style="margin:0;background:#fff">'
        f'<iframe id="phone" width="{width}" height="{height}" style="border:0;display:block" '
        f'srcdoc="{html.escape(page)}"></iframe><script>{MEASURE}</script></body></html>',
        encoding="utf-8",
    )
    return host


def test_a_phone_shows_every_check_without_clipping(report, tmp_path):
    from PIL import Image

    host = _phone(report, tmp_path)
    size = f"--window-size={PHONE[0]},{PHONE[1]}"
    dom, requests = _browse(tmp_path, host, size, "--dump-dom")
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, "the frame's layout was not measured"
    m = json.loads(html.unescape(found.group(1)))
    doc = json.loads((report / "result.json").read_text())
    assert m["viewport"] == PHONE[0] and m["cards"] == len(doc["checks"])
    assert m["scroll"] <= m["width"]  # the page never scrolls sideways...
    for part in ("rows", "cells", "figures", "banner"):
        assert 0 < m[part] <= m["width"], (part, m)  # ...nor sticks out of the screen
    assert m["overflowing"] == 0  # and no cell's text runs past its box
    assert requests == []

    shot = tmp_path / "phone.png"
    _browse(tmp_path, host, size, f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == PHONE
        rgb = image.convert("RGB")
        # the right margin of the framed page, left of its scroll bar: blank, nothing cut there
        margin = rgb.crop((m["width"] - 8, 0, m["width"], PHONE[1]))
        assert margin.getcolors() == [(8 * PHONE[1], (255, 255, 255))]
        assert len(rgb.getcolors(maxcolors=1_000_000)) > 50  # text and colours, not blank

"""report.html and the comparison page in headless Chromium: the verdict panel and two
before/after answer pairs are in the first screen (1280x800), and every image loads. Skipped
when Chromium is not installed."""

import json
import re
import shutil
import subprocess

import pytest
from support.reports import eval_result, write_run

from lm_unlearn.report import refresh_report, render_comparison

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian package `chromium`): the in-browser check of "
    "report.html (first screen, images load) is skipped",
)
WIDTH, HEIGHT = 1280, 800

# Measures the first screen before anything is opened, then opens every <details> and checks
# each image (data: URIs, so all are loaded by the load event); the answer goes into a
# <pre id="probe"> that --dump-dom prints. Synchronous on purpose: an awaited promise may
# outlast Chromium's virtual time budget on a loaded machine, and the dump then has no probe.
PROBE = """<script>
window.addEventListener("load", () => {
  const bottom = (el) => (el ? el.getBoundingClientRect().bottom : null);
  const pairs = ["#answers .cols > div:nth-child(1) .pairbox", "#answers .cols > div:nth-child(2) .pairbox"];
  const out = {
    screen: window.innerHeight,
    verdict: bottom(document.getElementById("verdict")),
    pairs: pairs.map((sel) => bottom(document.querySelector(sel))),
  };
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const images = [...document.images];
  out.images = images.length;
  out.broken = images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.alt);
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure(page: str, tmp_path) -> dict:
    path = tmp_path / "probe.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    args = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        path.as_uri(),
    ]
    for _ in range(3):  # a start that prints no DOM at all (seen once under load) is retried
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
        if found:
            break
    assert found, f"no probe output from Chromium (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def realistic() -> dict:
    """The fixture with answers as long as the default 48 new tokens allow."""
    result = eval_result()
    for rows in result["examples"].values():
        for row in rows:
            row["generation"] = (row["generation"] + " and so on, at some length.") * 6
            row["original_generation"] = (row["original_generation"] + " with further detail.") * 6
    return result


def test_report_first_screen_and_images_in_chromium(tmp_path):
    run = write_run(tmp_path / "run", realistic())
    assert refresh_report(run)
    seen = measure((run / "report.html").read_text(encoding="utf-8"), tmp_path)
    assert seen["verdict"] is not None and seen["verdict"] <= seen["screen"], seen
    assert all(b is not None and b <= seen["screen"] for b in seen["pairs"]), seen
    assert seen["images"] >= 3 and seen["broken"] == [], seen


def test_comparison_first_screen_and_images_in_chromium(tmp_path):
    kept = realistic()
    kept["metrics"]["model"]["retain.rougeL_vs_original"] = 0.9
    page = render_comparison({"a": realistic(), "b": kept})
    seen = measure(page, tmp_path)
    assert seen["verdict"] is not None and seen["verdict"] <= seen["screen"], seen
    assert all(b is not None and b <= seen["screen"] for b in seen["pairs"]), seen
    assert seen["images"] == 1 and seen["broken"] == [], seen

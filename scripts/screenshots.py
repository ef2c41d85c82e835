"""Screenshots of every tab of the page, and of its API page, at 1280 px and at 390 px (a phone), for docs/screens/.

    python -m scripts.screenshots [--out docs/screens] [--url URL]

Serves `python app.py` with the shipped weights on a free port (unless --url names a running page), then drives
Debian's chromium (Playwright) through what a first-time user does on each tab: an example slice, a batch with a file
that is not an image, the MNI152 template at 2 mm (examples/) as a whole scan. Needs the dev requirements and `apt-get install chromium`.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import zipfile
from pathlib import Path

from benchmarks.serve import serve
from tests.helpers import EXAMPLES, ROOT, SMALL_SCAN

WIDTHS = {"1280": {"width": 1280, "height": 900}, "390": {"width": 390, "height": 844}}


def shoot(page, out: Path, width: str, work: Path) -> list[Path]:
    """Each tab in turn, after a first-time user's action; the paths written."""
    written = []

    def save(name: str) -> None:
        page.wait_for_function("!document.body.innerText.includes('processing |')")
        page.wait_for_timeout(800)  # images and plots settle
        path = out / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        written.append(path)

    page.locator("#upload input[type=file]").set_input_files(str(EXAMPLES[0]))
    page.wait_for_function("document.querySelector('#overlay img')?.complete")
    save("one-slice")
    page.get_by_role("tab", name="Many slices").click()
    archive, broken = work / "slices.zip", work / "notes.txt"
    broken.write_text("a letter, not a slice")
    with zipfile.ZipFile(archive, "w") as handle:
        for path in EXAMPLES[2:6]:
            handle.write(path, path.name)
    page.locator("#batch-files input[type=file]").set_input_files([str(EXAMPLES[0]), str(EXAMPLES[6]), str(archive), str(broken)])
    page.wait_for_timeout(1000)
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-table')?.innerText.includes('notes.txt')")
    page.locator("#batch-table").get_by_text(EXAMPLES[0].name).first.click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    save("many-slices")
    page.get_by_role("tab", name="Whole scan").click()
    page.locator("#scan-files input[type=file]").set_input_files(str(SMALL_SCAN))
    page.wait_for_timeout(1000)
    page.locator("#scan-run").click()
    page.wait_for_function("document.querySelector('#scan-slice img')?.complete && document.querySelector('#scan-plot img, #scan-plot svg')")
    save("whole-scan")
    page.locator("footer .show-api").click()  # the API page, as its Python client would call it
    page.get_by_text("Python", exact=True).first.click()
    page.get_by_text("/classify_scan").first.wait_for()
    page.wait_for_timeout(800)
    path = out / f"api-{width}.png"
    page.screenshot(path=str(path))  # the page's own overlay: what shows on the first screen
    written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens", help="folder for the PNG files")
    parser.add_argument("--url", default=None, help="a page already running (default: serve app.py here)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(serve(["app.py"], timeout=900))[0]
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        for width, viewport in WIDTHS.items():
            context = browser.new_context(viewport=viewport, is_mobile=width == "390", has_touch=width == "390")
            page = context.new_page()
            page.set_default_timeout(300_000)
            page.goto(url, wait_until="load")
            page.locator("#upload input[type=file]").wait_for(state="attached")
            for path in shoot(page, args.out, width, work):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            context.close()


if __name__ == "__main__":
    main()

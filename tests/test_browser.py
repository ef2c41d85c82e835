"""The page in a real browser (Debian's chromium, driven by Playwright): what a first-time user does."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import EXAMPLES, ROOT, SMALL_SCAN, SERIES_SLICES, colour_photo, make_dicom, make_series, mni_template

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
LABEL = "#confidences [data-testid=label-output-value]"
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it, and in CI these tests never skip",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    page.locator("#upload input[type=file]").wait_for(state="attached")
    yield page
    context.close()


def upload(page, path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def wait_for_label(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('{LABEL}')?.innerText.includes('{text}')")


def phone(browser, app_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    page.locator("#upload input[type=file]").wait_for(state="attached")
    return context, page


def explain_class(page, name: str) -> None:
    """Choose, under Advanced, the class the heatmap explains, and wait for its map."""
    page.locator("#advanced").click()
    page.locator("#target input").click()
    page.get_by_role("option", name=name).click()
    page.wait_for_function(f"document.querySelector('#caption')?.innerText.includes('Heatmap for: {name}')")


def toasts(page) -> list[str]:
    return page.locator("[data-testid=toast-body]").all_inner_texts()


def test_an_upload_shows_answer_heatmap_caption_and_legend(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    assert "Glioma" in page.locator("#headline").inner_text() and "confidence" in page.locator("#headline").inner_text()
    page.wait_for_function("document.querySelector('#overlay img')?.complete && document.querySelector('#overlay img').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#overlay img').naturalWidth") == Image.open(EXAMPLES[0]).width
    assert "Heatmap for: Glioma" in page.locator("#caption").inner_text()
    trust = page.locator("#trust")  # the measured trust figure, right under the map it qualifies
    assert "this map's peak fell inside the tumour box on" in trust.inner_text()
    heatmap_bottom = page.evaluate("document.querySelector('#overlay').getBoundingClientRect().bottom")
    assert 0 <= trust.bounding_box()["y"] - heatmap_bottom < 40
    assert page.locator(".legend").is_visible() and "raised the score most" in page.locator(".legend").inner_text()
    assert "not a medical device" in page.locator("#notice").inner_text()
    assert "inside the tumour box" in page.locator("#model-line").inner_text()
    page.screenshot(path=str(ARTIFACTS / "app-screenshot.png"), full_page=True)


def test_the_gated_model_explains_its_map_and_says_how_often_it_finds_the_tumour(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    page.locator("#model input").click()
    page.get_by_role("option", name="resnet50_gated").click()
    page.wait_for_function("document.querySelector('#caption')?.innerText.includes('attention pool')")
    assert "trained on tumour boxes" in page.locator("#caption").inner_text()
    assert "this map's peak fell inside the tumour box on" in page.locator("#trust").inner_text()
    page.wait_for_function("document.querySelector('#model-line')?.innerText.includes('attention pool')")
    page.wait_for_function("!document.body.innerText.includes('processing |')")  # the new overlay is in
    page.screenshot(path=str(ARTIFACTS / "app-gated.png"), full_page=True)


def error_badges(page) -> int:
    return page.locator(".error, [data-testid=error]").count()


def test_a_file_the_tab_cannot_read_gives_one_sentence_and_the_page_stays_usable(page, tmp_path):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    bad = tmp_path / "scan.jpg"
    bad.write_text("this is a text file")
    upload(page, bad)
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('not an image in a supported format')")
    page.wait_for_timeout(1000)  # a toast or an error badge, if any, would have arrived by now
    assert toasts(page) == [] and error_badges(page) == 0
    assert page.locator(LABEL).count() == 0 and page.locator("#overlay img").count() == 0  # the old answer is gone
    volume = tmp_path / "brain.nii.gz"
    volume.write_bytes(mni_template().read_bytes())
    upload(page, volume)  # one action: the box took the new file
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('is a NIfTI volume, not one slice; the Whole scan tab reads it.')")
    page.screenshot(path=str(ARTIFACTS / "app-bad-file.png"), full_page=True)
    upload(page, EXAMPLES[2])
    wait_for_label(page, "Meningioma")
    assert toasts(page) == [] and error_badges(page) == 0


@pytest.mark.parametrize("name", ["IM0001", "slice.dcm"])
def test_dicom_files_are_analysed_whatever_their_name(page, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(make_dicom(np.asarray(Image.open(EXAMPLES[6]).convert("L"), np.uint16) * 16))
    upload(page, path)
    wait_for_label(page, "Pituitary")
    assert toasts(page) == []


def test_an_explained_class_is_named_and_a_new_image_returns_to_the_predicted_class(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    explain_class(page, "Meningioma")
    assert "improbable" in page.locator("#caption").inner_text()
    upload(page, EXAMPLES[4])
    wait_for_label(page, "No tumour")
    page.wait_for_function("document.querySelector('#caption')?.innerText.includes('Heatmap for: No tumour')")
    assert page.locator("#target input").input_value() == "Predicted class"


def test_the_gallery_names_true_class_plane_and_mistakes(page):
    captions = page.locator("#examples").inner_text()
    assert "Meningioma, coronal" in captions and "Glioma, axial" in captions and "Pituitary tumour, coronal" in captions
    note = page.locator("#examples-note").inner_text()
    assert "true class and plane" in note and ("misclassified" not in captions or "is classified as" in note)
    page.locator("#examples button.thumbnail-item, #examples .thumbnail-item").nth(2).click()
    wait_for_label(page, "Meningioma")


def test_the_warning_leads_when_the_input_is_not_an_mri(page, tmp_path):
    photo = tmp_path / "holiday.png"
    colour_photo().save(photo)
    upload(page, photo)
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('does not look like a brain MRI slice')")
    assert not page.locator("#headline").inner_text().startswith("Meningioma")
    page.screenshot(path=str(ARTIFACTS / "app-ood-warning.png"), full_page=True)


def test_on_a_phone_the_result_comes_into_view(browser, app_server):
    context, page = phone(browser, app_server)
    upload(page, EXAMPLES[2])
    wait_for_label(page, "Meningioma")
    page.wait_for_function("""(() => { const r = document.getElementById('result').getBoundingClientRect();
                              return r.top < window.innerHeight && r.bottom > 0 && r.top > -r.height; })()""")
    page.screenshot(path=str(ARTIFACTS / "app-phone.png"))
    context.close()


def test_analyse_with_no_image_says_what_to_do(page):
    page.locator("#analyse").click()
    page.locator("[data-testid=toast-body]").first.wait_for()
    assert "Upload a slice first" in toasts(page)[0]


def test_the_report_downloads_as_a_pdf(page, tmp_path):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    with page.expect_download() as download:
        page.locator("#report-button").click()
    path = tmp_path / "report.pdf"
    download.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF") and download.value.suggested_filename.endswith(".pdf")


def test_a_batch_fills_a_table_and_a_row_shows_its_heatmap(page, tmp_path):
    archive = tmp_path / "scans.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in EXAMPLES[:4]:
            handle.write(path, f"scans/{path.name}")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(EXAMPLES[6]), str(bad), str(archive)])
    page.wait_for_function("document.querySelectorAll('#batch-files .file-preview tr, #batch-files tbody tr').length >= 3")
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-table')?.innerText.includes('scans.zip/scans/glioma_1.jpg')")
    table = page.locator("#batch-table").inner_text()
    assert "broken.png" in table and "not an image" in table and "Pituitary tumour" in table
    assert page.locator("#batch-table img").count() >= 5  # thumbnails
    page.locator("#batch-table").get_by_text("scans.zip/scans/glioma_1.jpg").click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    assert "Heatmap for: Glioma" in page.locator("#batch-caption").inner_text()
    assert page.locator("#batch-csv a").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "app-batch.png"), full_page=True)


def test_a_batch_row_shows_its_heatmap_in_view_and_the_table_fits(page, tmp_path):
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in EXAMPLES[:3]])
    page.wait_for_function("document.querySelectorAll('#batch-files .file-preview tr, #batch-files tbody tr').length >= 3")
    page.locator("#batch-run").click()
    page.wait_for_function(f"document.querySelector('#batch-table')?.innerText.includes('{EXAMPLES[2].name}')")
    table = page.locator("#batch-table").bounding_box()
    header = page.locator("#batch-table th").last.bounding_box()
    assert header["x"] + header["width"] <= table["x"] + table["width"] + 2  # the last column is not cut off
    page.locator("#batch-table").get_by_text(EXAMPLES[2].name).last.click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    box = page.locator("#batch-heatmap img").bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] / 2 <= page.viewport_size["height"]  # in view, not below the fold


def test_on_a_phone_the_gallery_captions_are_whole_and_clear_of_the_label(browser, app_server):
    context, page = phone(browser, app_server)
    gallery = page.locator("#examples")
    gallery.scroll_into_view_if_needed()
    heading = page.locator("#examples-heading").bounding_box()
    first = page.locator("#examples .thumbnail-item").first.bounding_box()
    assert heading["y"] + heading["height"] <= first["y"] + 1  # nothing covers the thumbnails
    assert page.locator("#examples [data-testid=block-label]").count() == 0
    overflowing = page.evaluate("""[...document.querySelectorAll('#examples .caption-label')]
                                   .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)""")
    assert overflowing == []
    page.screenshot(path=str(ARTIFACTS / "app-phone-gallery.png"), full_page=True)
    context.close()


def open_scan_tab(page):
    page.get_by_role("tab", name="Whole scan").click()
    page.locator("#scan-files input[type=file]").wait_for(state="attached")


def wait_for_scan(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('#scan-summary')?.innerText.includes('{text}')")
    page.wait_for_function("document.querySelector('#scan-slice img')?.complete && document.querySelector('#scan-slice img').naturalWidth > 0")
    page.wait_for_function("document.querySelector('#scan-plot img, #scan-plot svg, #scan-plot canvas') !== null")


def test_a_nifti_volume_shows_its_plot_slider_and_key_slice(page, tmp_path):
    open_scan_tab(page)
    volume = tmp_path / "mni152.nii.gz"
    volume.write_bytes(mni_template().read_bytes())
    page.locator("#scan-files input[type=file]").set_input_files(str(volume))
    page.locator("#scan-run").click()
    page.wait_for_function(r"/\d+\/140 slices/.test(document.body.innerText)")  # the progress bar counts the slices scored
    wait_for_scan(page, "a NIfTI volume of 189 axial slices")
    summary = page.locator("#scan-summary").inner_text()
    assert "Checked on held-out scans" in summary and "Rule:" in summary
    caption = page.locator("#scan-caption").inner_text()
    assert "(key slice)" in caption and "Heatmap for:" in caption
    assert page.locator("#scan-slider").is_visible()
    page.screenshot(path=str(ARTIFACTS / "app-scan-nifti.png"), full_page=True)
    slider = page.locator("#scan-slider input[type=number]")
    slider.fill("95")
    slider.press("Enter")  # the typed number is the slice shown, with no drag of the slider
    page.wait_for_function("document.querySelector('#scan-caption')?.innerText.startsWith('Slice 95')")


def test_a_zipped_dicom_series_is_answered(page, tmp_path):
    open_scan_tab(page)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in make_series(SERIES_SLICES):
            handle.writestr(f"patient/{name}", data)
    page.locator("#scan-files input[type=file]").set_input_files(str(archive))
    page.locator("#scan-run").click()
    wait_for_scan(page, "a DICOM series of 6 acquired slices")
    assert "Glioma" in page.locator("#scan-summary").inner_text() or "No tumour" in page.locator("#scan-summary").inner_text()
    page.screenshot(path=str(ARTIFACTS / "app-scan-dicom.png"), full_page=True)


def no_error_anywhere(page) -> None:
    page.wait_for_timeout(800)  # a toast or an error badge, if any, would have arrived by now
    badges = page.locator(".error, [data-testid=error]")
    assert error_badges(page) == 0 and toasts(page) == [], [badges.nth(i).inner_text()[:200] for i in range(badges.count())]


def test_a_scan_can_be_analysed_again_in_another_plane_and_beside_a_second_scan(page, tmp_path):
    open_scan_tab(page)
    page.locator("#scan-files input[type=file]").set_input_files(str(SMALL_SCAN))
    page.locator("#scan-run").click()
    wait_for_scan(page, "95 axial slices")
    page.locator("#scan-run").click()  # the same upload again: the page read it once and keeps it for the session
    page.wait_for_function(r"/\d+\/\d+ slices/.test(document.body.innerText)")  # scoring again, with its progress bar
    page.wait_for_function(r"!/\d+\/\d+ slices/.test(document.body.innerText)")
    wait_for_scan(page, "95 axial slices")
    no_error_anywhere(page)
    page.get_by_label("coronal").check()
    page.locator("#scan-run").click()
    wait_for_scan(page, "117 coronal slices")
    no_error_anywhere(page)
    second = tmp_path / "second.nii.gz"
    second.write_bytes(SMALL_SCAN.read_bytes())
    page.locator("#scan-files input[type=file]").set_input_files(str(second))  # dropped beside the first
    page.wait_for_function("document.querySelector('#scan-files')?.innerText.includes('second.nii')")
    assert "mni152_2mm.nii" in page.locator("#scan-files").inner_text()
    page.locator("#scan-run").click()
    page.wait_for_function("document.querySelector('#scan-series')?.offsetParent !== null")
    wait_for_scan(page, "117 coronal slices")
    no_error_anywhere(page)


def test_after_a_model_switch_the_batch_table_goes_and_classify_all_runs_again(page):
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in EXAMPLES[:3]])
    page.wait_for_function("document.querySelectorAll('#batch-files .file-preview tr, #batch-files tbody tr').length >= 3")
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-status')?.innerText.includes('classified by resnet50.')")
    page.locator("#batch-table").get_by_text(EXAMPLES[0].name).first.click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    page.locator("#model input").click()
    page.get_by_role("option", name="resnet50_gated").click()
    page.wait_for_function("document.querySelector('#batch-status')?.innerText.includes('The model is now resnet50_gated')")
    assert EXAMPLES[0].name not in page.locator("#batch-table").inner_text()  # the old model's rows are gone
    # the heatmap and its caption go in the same update, which Gradio may still be drawing ("processing | 0.1s")
    page.wait_for_function("document.querySelector('#batch-heatmap img') === null"
                           " && document.querySelector('#batch-caption')?.innerText.trim() === ''")
    page.locator("#batch-run").click()  # the uploads were read before; the session still holds them
    page.wait_for_function("document.querySelector('#batch-status')?.innerText.includes('classified by resnet50_gated')")
    assert EXAMPLES[2].name in page.locator("#batch-table").inner_text()
    no_error_anywhere(page)


def test_a_no_tumour_map_says_what_it_shows_instead_of_the_tumour_box_figure(page):
    upload(page, EXAMPLES[4])
    wait_for_label(page, "No tumour")
    page.wait_for_function("document.querySelector('#trust')?.innerText.includes('How to read this map')")
    assert "not a lesion" in page.locator("#trust").inner_text() and "tumour box on" not in page.locator("#trust").inner_text()
    page.locator("#model input").click()
    page.get_by_role("option", name="resnet50_gated").click()
    page.wait_for_function("document.querySelector('#trust')?.innerText.includes('the gate still marks')")


def test_a_small_volumes_key_slice_fills_its_box_and_is_a_slice_of_the_brain(page):
    open_scan_tab(page)
    page.locator("#scan-files input[type=file]").set_input_files(str(SMALL_SCAN))
    page.locator("#scan-run").click()
    wait_for_scan(page, "95 axial slices")
    drawn = page.locator("#scan-slice img").bounding_box()
    assert drawn["height"] >= 300  # 117 px of the volume, drawn in a 380 px box
    key = int(page.locator("#scan-slider input[type=number]").input_value())
    assert 20 <= key <= 75  # the brain: not the neck and the skull base below slice 16, nor the vertex above 75


def test_on_a_phone_the_first_screen_shows_the_upload_box_and_the_api_link(browser, app_server):
    context, page = phone(browser, app_server)
    box = page.locator("#upload").bounding_box()
    assert box["y"] + box["height"] <= 844  # on the first screen, below the header and the model line
    assert "found" in page.locator("#model-line").inner_text()  # the outside figures are still there
    page.locator("footer .show-api").scroll_into_view_if_needed()
    assert page.locator("footer .show-api").is_visible()
    page.screenshot(path=str(ARTIFACTS / "app-phone-first-screen.png"))
    context.close()


def test_on_a_phone_the_batch_table_fits_and_breaks_no_word(browser, app_server, tmp_path):
    context, page = phone(browser, app_server)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in EXAMPLES] + [str(bad)])
    page.wait_for_timeout(1500)
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-table')?.innerText.includes('broken.png')")
    table = page.locator("#batch-table").bounding_box()
    cells = page.evaluate("""[...document.querySelectorAll('#batch-table .body-cell, #batch-table .header-cell')]
        .filter(c => c.offsetParent !== null).map(c => { const b = c.getBoundingClientRect(); return [b.left, b.right]; })""")
    assert cells and all(table["x"] - 1 <= left and right <= table["x"] + table["width"] + 1 for left, right in cells)
    # a class name or a confidence on one line: no "Glio/ma", no "99/.7"
    broken = page.evaluate("""[...document.querySelectorAll('#batch-table .body-cell:nth-child(3), #batch-table .body-cell:nth-child(4)')]
        .filter(c => c.innerText.trim() && !c.innerText.trim().includes(' ')).filter(c => {
          const walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT), tops = new Set();
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const r = document.createRange(); r.selectNodeContents(node);
            [...r.getClientRects()].filter(x => x.width > 0).forEach(x => tops.add(Math.round(x.top))); }
          return tops.size > 1; }).map(c => c.innerText)""")
    assert broken == []
    clipped = page.evaluate("""[...document.querySelectorAll('#batch-table .body-cell')].filter(c => c.offsetParent !== null)
        .filter(c => { const edge = c.getBoundingClientRect().right, walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const r = document.createRange(); r.selectNodeContents(node);
            if ([...r.getClientRects()].some(x => x.right > edge + 1)) return true; }
          return false; }).map(c => c.innerText)""")
    assert clipped == []  # "Pituitary tumour" wraps at its space rather than losing its end
    viewport = page.locator("#batch-table .virtual-table-viewport")
    assert viewport.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # the whole table, its error row too, with the page
    page.screenshot(path=str(ARTIFACTS / "app-phone-batch.png"), full_page=True)
    context.close()


def test_on_a_phone_the_scan_plot_has_its_title_above_it_and_reads_at_its_size(browser, app_server):
    context, page = phone(browser, app_server)
    open_scan_tab(page)
    page.locator("#scan-files input[type=file]").set_input_files(str(SMALL_SCAN))
    page.locator("#scan-run").click()
    wait_for_scan(page, "95 axial slices")
    title = page.locator("#scan-plot-title").bounding_box()
    plot = page.locator("#scan-plot img").bounding_box()
    assert title["y"] + title["height"] <= plot["y"] + 1  # the title covers nothing
    natural = page.locator("#scan-plot img").evaluate("e => e.naturalWidth")
    # drawn at 5 inches and 150 dpi with 12 pt type: at this width, its type is at least 8 px tall
    assert plot["width"] >= 300 and 12 * 150 / 72 * plot["width"] / natural >= 8
    page.screenshot(path=str(ARTIFACTS / "app-phone-scan.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_gallery_and_the_batch_table_grow_with_the_page(browser, app_server, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    page.locator("#examples .thumbnail-item").first.wait_for()
    inner = page.evaluate("""[...document.querySelectorAll('#examples *')].filter(e => e.scrollHeight > e.clientHeight + 1
        && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY)).length""")
    assert inner == 0  # no box scrolls by itself: every caption shows with the page
    captions = page.locator("#examples .caption-label")
    assert captions.count() == len(EXAMPLES) and all(captions.nth(i).is_visible() for i in range(captions.count()))
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in EXAMPLES] * 2)
    page.wait_for_timeout(1500)
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-status')?.innerText.includes('16 of 16')")
    assert page.locator("#batch-table .virtual-table-viewport").evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    context.close()


def test_analyse_again_on_one_slice_reuses_the_slice_it_read(page):
    upload(page, EXAMPLES[2])
    wait_for_label(page, "Meningioma")
    explain_class(page, "Glioma")
    page.locator("#analyse").click()  # the upload was read and deleted; the session keeps the slice
    page.wait_for_function("!document.body.innerText.includes('processing |')")
    assert "Heatmap for: Glioma" in page.locator("#caption").inner_text()
    no_error_anywhere(page)

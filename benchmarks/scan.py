"""How long a whole scan takes: `python -m benchmarks.scan [--volume FILE.nii.gz] [--rounds 3] [--weights DIR]`.

The volume (default: the MNI152 T1 template nilearn's wheel ships, 189 axial slices) is answered three ways, each
timed from the file to the whole answer (every slice inside the head scored, the key slice's heatmap made):
- the library: brain_tumor.uploads.gather + brain_tumor.scan.classify_scan with the model already loaded;
- the API: `classify_scan` through a served `python app.py` (upload, queue, answer, download), beside a page with no
  model (benchmarks.echo_app) for Gradio's own share;
- the page: the Whole scan tab in Chromium, from the click on "Analyse scan" to the summary and key slice shown
  (when playwright and chromium are installed);
- the command line: `brain-tumor-predict FILE`, start-up and model loading included.
Prints the median and the slowest of --rounds for each, and the slices per second of the library path.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.serve import ROOT, serve


def mni_template() -> Path | None:
    """The MNI152 T1 template nilearn's wheel ships (197×233×189 voxels of 1 mm; a healthy average brain); None without
    nilearn. The whole-scan tests read it too."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def timed(work, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def line(name: str, times: list[float], extra: str = "") -> str:
    return f"{name:<34} median {statistics.median(times):6.2f} s   slowest {max(times):6.2f} s{extra}"


def page_times(url: str, volume: Path, rounds: int) -> list[float]:
    """Seconds from a click on "Analyse scan" to the summary and the key slice shown, in a fresh Chromium page each
    round; [] without playwright or chromium."""
    import shutil

    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    if chromium is None:
        return []
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Whole scan").click()
            page.locator("#scan-files input[type=file]").set_input_files(str(volume))
            page.wait_for_function("document.querySelectorAll('#scan-files .file-preview tr, #scan-files tbody tr').length >= 1")
            start = time.perf_counter()
            page.locator("#scan-run").click()
            page.wait_for_function("document.querySelector('#scan-summary')?.innerText.includes('slices:') "
                                   "&& document.querySelector('#scan-slice img')?.complete")
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", type=Path, default=None, help="a NIfTI file (default: nilearn's MNI152 T1 template)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", default=None, help="weights folder (default: the shipped default model)")
    args = parser.parse_args(argv)
    volume = args.volume or mni_template()
    if volume is None:
        raise SystemExit("error: nilearn is not installed; pass --volume FILE, or pip install nilearn (its wheel ships the MNI152 template).")

    from brain_tumor import Classifier
    from brain_tumor.scan import classify_scan
    from brain_tumor.uploads import gather

    classifier = Classifier.from_pretrained(args.weights)
    data = volume.read_bytes()
    answers = []

    def library():
        (scan,) = gather([(volume.name, data)], scans=True)
        answers.append(classify_scan(classifier, scan.volume))

    library()  # warm-up: onnxruntime's first run
    print(f"{answers[0].volume.describe()}; model {classifier.config.architecture} ({classifier.backend}); "
          f"{os.cpu_count()} CPUs")
    in_library = timed(library, args.rounds)
    scored = answers[-1].to_json()["scored"]
    results = [line("library (model loaded)", in_library, f"   {scored} slices scored, {scored / statistics.median(in_library):.1f} slices/s")]

    from gradio_client import Client, handle_file

    env = {"BRAIN_TUMOR_WEIGHTS": str(args.weights)} if args.weights else {}
    with serve(["app.py", "--no-mcp"], env=env, timeout=600) as (url, _), serve(["-m", "benchmarks.echo_app"], timeout=300) as (echo_url, _):
        client, echo = Client(url, verbose=False), Client(echo_url, verbose=False)
        client.predict([handle_file(str(volume))], api_name="/classify_scan")  # warm-up
        api = timed(lambda: client.predict([handle_file(str(volume))], api_name="/classify_scan"), args.rounds)
        gradio_only = timed(lambda: echo.predict(handle_file(str(volume)), api_name="/echo_file"), args.rounds)
        page = page_times(url, volume, args.rounds)
    results.append(line("API classify_scan (served app)", api))
    results.append(line("  a page with no model, same file", gradio_only,
                        f"   app's time above it: {statistics.median(api) - statistics.median(gradio_only):.2f} s"))
    if page:
        results.append(line("the page: Analyse scan to the answer", page, "   (Chromium; the file uploaded before the click)"))
    else:
        results.append("the page: not timed (needs playwright and Debian's chromium)")
    command = [sys.executable, "-m", "brain_tumor.predict", str(volume)] + (["--weights", args.weights] if args.weights else [])
    cli = timed(lambda: subprocess.run(command, cwd=ROOT, capture_output=True, check=True), args.rounds)
    results.append(line("command line (start-up included)", cli))
    print("\n".join(results))
    print(f"summary: {answers[-1].summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The live app's speed and memory: `python -m benchmarks.serving [--requests 20] [--clients 1]`.

Starts `python app.py` and a page with no model (benchmarks.echo_app) on free localhost ports,
times the app's start-up to its first served answer, then sends predict+heatmap requests (the
example images in turn) to both, alternating, and prints p50/p95 for each and the app's time above
Gradio's own round trip (upload, queue, answer, download). With --clients N, N gradio_client
clients load the app at once. Ends with the app's peak RSS.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.serve import ROOT, peak_rss_mb, serve

EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))


def app_call(client, path: Path):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/classify")


def echo_call(client, path: Path):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/echo")


def stats(times: list[float]) -> str:
    return f"p50 {1000 * statistics.median(times):.0f} ms, p95 {1000 * np.percentile(times, 95):.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--batch", type=int, default=50, help="slices in one timed classify_batch call (0: none)")
    args = parser.parse_args(argv)
    from gradio_client import Client

    start = time.monotonic()
    with serve(["app.py"]) as (url, app), serve(["-m", "benchmarks.echo_app"]) as (echo_url, _):
        client = Client(url, verbose=False)
        app_call(client, EXAMPLES[0])
        first = time.monotonic() - start
        echo = Client(echo_url, verbose=False)
        for path in EXAMPLES[:2]:
            echo_call(echo, path)
            app_call(client, path)
        app_times, echo_times = [], []
        for i in range(args.requests):
            path = EXAMPLES[i % len(EXAMPLES)]
            for call, target, times in ((echo_call, echo, echo_times), (app_call, client, app_times)):
                t0 = time.perf_counter()
                call(target, path)
                times.append(time.perf_counter() - t0)
        print(f"start-up to first served answer: {first:.1f} s")
        print(f"Gradio alone (no model, image in and out), {args.requests} requests: {stats(echo_times)}")
        print(f"the app, predict + heatmap, {args.requests} requests: {stats(app_times)}")
        above = [a - e for a, e in zip(app_times, echo_times)]
        print(f"the app above Gradio's own round trip: p50 {1000 * statistics.median(above):.0f} ms")

        if args.batch:
            import shutil
            import tempfile

            from gradio_client import handle_file

            with tempfile.TemporaryDirectory() as tmp:
                files = []
                for i in range(args.batch):  # distinct names, the examples in turn
                    files.append(Path(tmp) / f"{i:03d}-{EXAMPLES[i % len(EXAMPLES)].name}")
                    shutil.copy(EXAMPLES[i % len(EXAMPLES)], files[-1])
                t0 = time.perf_counter()
                rows, _ = client.predict([handle_file(str(f)) for f in files], api_name="/classify_batch")
                took = time.perf_counter() - t0
            print(f"classify_batch of {args.batch} slices: {took:.1f} s ({1000 * took / args.batch:.0f} ms a slice), "
                  f"{sum(r['error'] is None for r in rows)} classified")

        if args.clients > 1:
            def worker(index: int) -> tuple[list[float], int]:
                own = Client(url, verbose=False)
                times, errors = [], 0
                for i in range(args.requests):
                    t0 = time.perf_counter()
                    try:
                        app_call(own, EXAMPLES[(index + i) % len(EXAMPLES)])
                        times.append(time.perf_counter() - t0)
                    except Exception:
                        errors += 1
                return times, errors

            wall = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(worker, range(args.clients)))
            wall = time.perf_counter() - wall
            times = [t for ts, _ in results for t in ts]
            print(f"{args.clients} clients × {args.requests} requests: {len(times)} ok, {sum(e for _, e in results)} errors, "
                  f"{stats(times)}, {len(times) / wall:.2f} requests/s")
        print(f"app peak RSS: {peak_rss_mb(app.pid):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

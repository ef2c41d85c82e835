"""Measure the live app: start-up time, request latency and peak memory.

    python scripts/measure_app.py [--requests 20] [--clients 1]

Starts `python app.py` on a free localhost port, times the seconds until the first prediction is
served, then sends predict+Grad-CAM requests (the example images in turn) from `--clients`
concurrent gradio_client clients, and prints p50/p95 latency, errors and the server's peak RSS.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1"})
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - start > 300:
                    print("the app did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        client = Client(url, verbose=False)
        client.predict(handle_file(str(EXAMPLES[0])), "Predicted class", 0.5, "resnet50", api_name="/predict")
        first = time.monotonic() - start

        def worker(index: int) -> tuple[list[float], int]:
            own = Client(url, verbose=False)
            times, errors = [], 0
            for i in range(args.requests):
                path = EXAMPLES[(index + i) % len(EXAMPLES)]
                t0 = time.perf_counter()
                try:
                    own.predict(handle_file(str(path)), "Predicted class", 0.5, "resnet50", api_name="/predict")
                    times.append(time.perf_counter() - t0)
                except Exception:
                    errors += 1
            return times, errors

        wall = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(worker, range(args.clients)))
        wall = time.perf_counter() - wall
        times = [t for ts, _ in results for t in ts]
        errors = sum(e for _, e in results)
        print(f"start-up to first served prediction: {first:.1f} s")
        print(f"{args.clients} client(s) × {args.requests} predict+Grad-CAM requests: {len(times)} ok, {errors} errors, "
              f"p50 {1000 * statistics.median(times):.0f} ms, p95 {1000 * np.percentile(times, 95):.0f} ms, "
              f"{len(times) / wall:.2f} requests/s")
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: GPL-3.0-or-later
"""Web app latency: start-up to ready, and Analyze right after an upload (cold, then warm).

    python benchmarks/bench_app.py [--runs 3] [--clips examples/a.wav,examples/b.wav]

Starts ``python app.py`` as a Space would (its own process, a free port),
times until the page answers (the app warms the model and the render
workers before it listens), then calls Analyze through gradio_client: the
first call is "cold" (first request of the process), the next ones "warm".
Each Analyze time includes the upload of the clip and the download of the
outputs (players, spectrogram, .vital), i.e. what a user waits for. The
server's own breakdown comes from its log. Prints a Markdown table.
Timings depend on the machine's load: say how loaded it was.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="warm Analyze calls (after the cold one)")
    ap.add_argument("--clips", default="examples/lead-umbra.wav,examples/pad-lexapro.wav,examples/bass-nier.wav")
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args(argv)
    clips = [ROOT / c if not Path(c).is_absolute() else Path(c) for c in args.clips.split(",")]

    from gradio_client import Client, handle_file

    port = _free_port()
    log_path = Path(tempfile.mkstemp(prefix="bench-app-", suffix=".log")[1])
    env = dict(os.environ, PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("ANTHROPIC_API_KEY", None)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise SystemExit(f"app.py exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"app.py not ready after {args.timeout:.0f} s")
            time.sleep(0.1)
        startup = time.monotonic() - t0

        client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="bench-app-dl-"),
                        analytics_enabled=False)
        rows = []
        for i in range(1 + max(0, args.runs)):
            clip = clips[i % len(clips)]
            t = time.monotonic()
            client.predict(handle_file(str(clip)), api_name="/analyze")
            rows.append(("cold" if i == 0 else "warm", clip.name, time.monotonic() - t))
        server = re.findall(r"analyze (\S+): ([\d.]+) s in all \((.*)\)", log_path.read_text())
        engine = re.findall(r"engine ready in ([\d.]+) s \((.*)\)", log_path.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    warm = [s for kind, _, s in rows if kind == "warm"]
    print(f"Machine: {os.cpu_count()} CPUs, load average {load:.1f} at start "
          f"({'heavily loaded: timings are pessimistic' if load > (os.cpu_count() or 1) else 'lightly loaded'}).")
    print()
    print("| measurement | seconds |")
    print("| --- | ---: |")
    print(f"| start-up to ready (`python app.py` until the page answers) | {startup:.1f} |")
    if engine:
        print(f"| … of which warm-up (model, render workers, first-call paths) | {float(engine[0][0]):.1f} |")
    for kind, name, seconds in rows:
        print(f"| Analyze after upload, {kind} (`{name}`, client-side) | {seconds:.2f} |")
    if warm:
        print(f"| Analyze after upload, warm median of {len(warm)} | {statistics.median(warm):.2f} |")
    print()
    if engine:
        print(f"Warm-up breakdown: {engine[0][1]}")
    for name, total, parts in server:
        print(f"- server side, {name}: {float(total):.2f} s ({parts}; the rest: WAVs, spectrogram, table, export)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

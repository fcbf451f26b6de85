#!/usr/bin/env python3
"""Dispatch throughput: how fast a rack powering on gets its redirects.

A small NixOS-shaped system (init, kernel, kernel-params in one store path, added with
`nix-store --add`) is dispatched through `/dispatch/closure/NAME` by 8 keep-alive clients (wrk, 2
threads) for a few seconds, side by side with the same clients on `/boot/NAME/netboot.ipxe` (the
script route, which runs no Nix at all once the path is known valid). The server is the release
binary; the system is dispatched once before the runs, so every measured dispatch finds it pinned.
Prints requests per second for both, their ratio, and the GC roots in the pins directory before and
after the flood (one per system: it must stay flat).

usage: python3 bench/dispatch.py --binary .build-bench/release/nix-netboot-serve [--seconds 5] [--runs 3]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import REPO, Server, stop_all  # noqa: E402


def make_system(work):
    """A store path shaped like a NixOS toplevel, without nixpkgs."""
    src = tempfile.mkdtemp(prefix="dispatch-system-", dir=work)
    with open(os.path.join(src, "init"), "w") as f:
        f.write("#!/bin/sh\necho not a real init\n")
    os.chmod(os.path.join(src, "init"), 0o755)
    with open(os.path.join(src, "kernel"), "wb") as f:
        f.write(b"\0" * 4096)
    with open(os.path.join(src, "kernel-params"), "w") as f:
        f.write("console=ttyS0")
    path = subprocess.run(["nix-store", "--add", src], check=True, capture_output=True, text=True).stdout.strip()
    link = os.path.join(work, "dispatch-system")
    subprocess.run(["nix-store", "--realise", path, "--add-root", link, "--indirect"], check=True, capture_output=True)
    return path


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(non2xx.group(1)) if non2xx else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, ".build-bench", "release", "nix-netboot-serve"))
    parser.add_argument("--work", default="/var/tmp/nix-netboot-serve-bench")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    system = make_system(args.work)
    name = os.path.basename(system)
    server = Server(args.binary, "zstd", args.work)
    try:
        dispatch_url = f"{server.base}/dispatch/closure/{name}"
        script_url = f"{server.base}/boot/{name}/netboot.ipxe"
        pins = os.path.join(server.state, "gc-roots", "pins")
        with urllib.request.urlopen(script_url) as r:
            assert r.status == 200
        with urllib.request.urlopen(dispatch_url) as r:  # follows the redirect: pinned, script answered
            assert r.status == 200
        before = len(os.listdir(pins))
        dispatch, script, failures = [], [], 0
        for _ in range(args.runs):  # interleaved
            rate, bad = wrk(dispatch_url, args.seconds)
            dispatch.append(rate)
            failures += bad
            rate, bad = wrk(script_url, args.seconds)
            script.append(rate)
            failures += bad
        after = len(os.listdir(pins))
    finally:
        stop_all()
        server.remove_state()
    d, s = statistics.median(dispatch), statistics.median(script)
    print("| figure | value | runs |")
    print("|---|---|---|")
    print(f"| dispatches/s of a pinned system, 8 keep-alive clients | {d:,.0f} | {', '.join(f'{x:,.0f}' for x in dispatch)} |")
    print(f"| script route requests/s, same clients | {s:,.0f} | {', '.join(f'{x:,.0f}' for x in script)} |")
    print(f"| ratio dispatch / script | {d / s:.3f} | |")
    print(f"| GC roots in pins/ before and after the flood | {before} → {after} | |")
    print(f"| answers other than 2xx/3xx | {failures} | |")
    print(f"goal: dispatches ≥ 1,000/s: {'PASS' if d >= 1000 else 'MISS'}; roots flat: {'PASS' if after == before == 1 else 'MISS'}")


if __name__ == "__main__":
    main()

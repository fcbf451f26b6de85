#!/usr/bin/env python3
"""Benchmark driver for nix-netboot-serve (issue 5): the server side by side with what users would
run instead, on one machine, in one run.

    python3 bench/bench.py --binary .build-bench/release/nix-netboot-serve

Run through `make bench` (scripts/bench.sh), which installs the tools, builds the release binary and
calls this. Python 3 standard library only. Everything listens on and talks to 127.0.0.1 only; every
loop is bounded; every process started here is stopped here, by its own PID.

What it does (`--parts`, all by default; e.g. `--parts herd --herd-clients 20` for a quick look):
 1. selects real files of this machine with fixed rules (sorted, deterministic for a given machine)
    and writes a manifest; bench/closure.nix imports them into the Nix store and builds the roots the
    parts need (`full`, `changed`: `full` with one small path changed, `small`: the subset xz is
    measured on; `bigpath`: one path of a ≥ 150 MB ELF file and 4,000 small files, about half of the
    closure's bytes, among ~375 small paths, see select_bigpath; `huge`: `full` plus one ~1 GB path of
    large ELF files, ~1.43 GB, see select_huge);
 2. cold (for each codec): cold runs (a fresh server with an empty cache, `GET /boot/NAME/initrd`),
    each followed by the same closure packed the NixOS way (`find | cpio -o -H newc | COMPRESSOR`),
    single-threaded and multi-threaded; for zstd also the incremental initrd of `changed` after
    `full`, against the full rebuild of `changed`; then warm downloads against nginx (sendfile on)
    serving the same bytes as one static file;
 3. bigpath: the same cold zstd runs on the `bigpath` closure, side by side with its rebuilds;
 4. concurrent: 32 concurrent cold downloads of one closure against one: server CPU, wall time, peak
    RSS, and every download byte-identical;
 5. huge: one cold zstd pack of the `huge` closure: the server's peak RSS (VmHWM), wall, CPU;
 6. herd: the `full` zstd initrd packed, the server restarted on that cache, then 200 concurrent
    downloads of it alternating with 200 from nginx (`sendfile on`, `worker_processes auto`) serving
    the same bytes, 3 each: aggregate throughput, the server's peak RSS (VmHWM and VmRSS sampled every
    50 ms) against nginx's, the clients' own CPU, and every body checked (length, first MiB, and the
    sha256 of every 50th);
 7. prints a table of medians, spreads (min–max) and ratios, with PASS/MISS per goal, and writes it
    to bench/results/latest.md.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import stat as st
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1000 * 1000
MiB = 1 << 20

# ----------------------------------------------------------------------------------------------
# Output


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    """Runs a command (list), raising with its stderr on failure; returns stdout as text."""
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result.stdout


# ----------------------------------------------------------------------------------------------
# 1. The closure: selection rules


def tree_bytes(path):
    """Bytes of regular files and symlink targets under `path` (not following symlinks)."""
    info = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        return info.st_size
    total = 0
    for parent, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
            total += os.lstat(os.path.join(parent, name)).st_size
    return total


def tree_is_importable(path):
    """Whether every entry under `path` is a directory, regular file or symlink, and readable."""
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(parent, name)
            mode = os.lstat(full).st_mode
            if st.S_ISLNK(mode) or st.S_ISDIR(mode):
                continue
            if not st.S_ISREG(mode) or not os.access(full, os.R_OK):
                return False
    return True


def store_name(prefix, name):
    """A valid store path name: Nix accepts [A-Za-z0-9+-._?=], not starting with a dot."""
    clean = re.sub(r"[^A-Za-z0-9+\-._?=]", "-", name)
    return (prefix + "-" + clean)[:200]


def real_subdirs(parent):
    if not os.path.isdir(parent):
        return []
    return sorted(
        os.path.join(parent, n)
        for n in os.listdir(parent)
        if os.path.isdir(os.path.join(parent, n)) and not os.path.islink(os.path.join(parent, n))
    )


def symlinks_to(directory, file_name):
    """Names of the symlinks in `directory` that point at `file_name` (a package's libfoo.so.1 → …)."""
    links = []
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        if os.path.islink(full) and os.path.basename(os.readlink(full)) == file_name:
            links.append(name)
    return links


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def select_members(target_bytes, cap_bytes):
    """The benchmark closure's members, by fixed rules over sorted listings of this machine.

    Small paths (like a system's many small packages):
      doc      — directories of /usr/share/doc of at most 1 MiB, the first 200 by name;
      locale   — directories of /usr/share/locale, the first 40 by name;
      man      — /usr/share/man/man1 … man8;
      zoneinfo — /usr/share/zoneinfo; perl — /usr/share/perl/<version>, /usr/share/perl5;
      lib      — lib*.so.* regular files of /usr/lib/x86_64-linux-gnu between 16 KiB and 8 MiB, the
                 first 120 by name, each a directory path holding the file and its symlinks.
    Large paths: ELF files of at least 16 MiB under /usr/lib/x86_64-linux-gnu, /usr/lib/gcc and
      /opt/swift/usr/lib, smallest first (ties by name), each taken if the total stays within
      `cap_bytes`, until the total reaches `target_bytes` (at most 10).
    `small` marks the members the xz runs use: doc, locale, zoneinfo, perl and the first 60 lib.
    """
    members = []

    def add(prefix, path, only=None, small=False):
        size = tree_bytes(path) if only is None else sum(os.lstat(os.path.join(path, n)).st_size for n in only)
        label = os.path.basename(path) if only is None else only[0]
        members.append({"name": store_name(prefix, label), "path": path, "only": only, "small": small, "bytes": size})

    docs = [d for d in real_subdirs("/usr/share/doc") if tree_bytes(d) <= MiB and tree_is_importable(d)]
    for d in docs[:200]:
        add("doc", d, small=True)
    for d in [d for d in real_subdirs("/usr/share/locale") if tree_is_importable(d)][:40]:
        add("locale", d, small=True)
    for n in range(1, 9):
        d = f"/usr/share/man/man{n}"
        if os.path.isdir(d) and not os.path.islink(d) and tree_is_importable(d):
            add("man", d)
    if os.path.isdir("/usr/share/zoneinfo") and tree_is_importable("/usr/share/zoneinfo"):
        add("tzdata", "/usr/share/zoneinfo", small=True)
    for d in real_subdirs("/usr/share/perl") + ([p for p in ["/usr/share/perl5"] if os.path.isdir(p)]):
        if tree_is_importable(d):
            add("perl", d, small=True)

    libdir = "/usr/lib/x86_64-linux-gnu"
    libs = []
    for name in sorted(os.listdir(libdir)):
        full = os.path.join(libdir, name)
        if re.match(r"^lib.*\.so\..*", name) and os.path.isfile(full) and not os.path.islink(full):
            size = os.lstat(full).st_size
            if 16 * 1024 <= size <= 8 * MiB and os.access(full, os.R_OK):
                libs.append(name)
    for i, name in enumerate(libs[:120]):
        add("lib", libdir, only=[name] + symlinks_to(libdir, name), small=i < 60)

    total = sum(m["bytes"] for m in members)
    candidates = []
    for root in [libdir, "/usr/lib/gcc", "/opt/swift/usr/lib"]:
        if not os.path.isdir(root):
            continue
        walker = [(root, [], sorted(os.listdir(root)))] if root == libdir else os.walk(root)
        for parent, _, files in walker:
            for name in files:
                full = os.path.join(parent, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                size = os.lstat(full).st_size
                if size >= 16 * MiB and is_elf(full):
                    candidates.append((size, full))
    large = 0
    for size, full in sorted(candidates):
        if total >= target_bytes or large >= 10:
            break
        if total + size > cap_bytes:
            continue
        parent, name = os.path.split(full)
        add("big", parent, only=[name] + symlinks_to(parent, name))
        total += size
        large += 1
    return members


# Where the large ELF files of the `bigpath` and `huge` closures are looked for (walked, sorted).
LARGE_FILE_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/gcc", "/usr/lib/jvm", "/opt/swift/usr/bin", "/opt/swift/usr/lib"]
# Where the small files of the `bigpath` closure's largest path come from.
TREE_DIR = "/usr/include"


def elf_files(roots, min_bytes):
    """(size, path) of the readable regular ELF files of at least `min_bytes` under `roots` (walked,
    symlinks not followed), smallest first, ties by path."""
    found = set()
    for root in roots:
        if not os.path.isdir(root):
            continue
        for parent, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(parent, name)
                try:
                    info = os.lstat(full)
                except OSError:
                    continue
                if st.S_ISREG(info.st_mode) and info.st_size >= min_bytes and os.access(full, os.R_OK) and is_elf(full):
                    found.add((info.st_size, full))
    return sorted(found)


def keep_list(relative_files):
    """The `keep` filter of closure.nix: every file and each of its parent directories."""
    keep = set()
    for rel in relative_files:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            keep.add("/".join(parts[:i]))
    return sorted(keep)


def select_bigpath(min_file_bytes, tree_files):
    """The `bigpath` closure: one store path holding one big file and a tree of small ones, about half
    of the closure's bytes, among many small paths. Fixed rules:

      big file — the smallest readable regular ELF file of at least `min_file_bytes` under
                 LARGE_FILE_DIRS (walked, sorted; ties by path), with the symlinks of its directory
                 that point at it; here /opt/swift/usr/bin/clang-21 (167 MB);
      tree     — the first `tree_files` readable regular files of at most 1 MiB under TREE_DIR
                 (/usr/include), walked in sorted order;
      both are one store path `bigpath-NAME` whose files keep their absolute layout (`opt/…`, `usr/…`);
      the rest — select_members with a target and a cap of 1.0 and 1.1 × that path's bytes: the small
                 paths of `full` (same rules, same store paths) plus the smallest ELF files of at least
                 16 MiB until the rest weighs about as much as the big path.
    """
    candidates = elf_files(LARGE_FILE_DIRS, min_file_bytes)
    if not candidates:
        raise SystemExit(f"bench: the bigpath closure needs one ELF file of at least {min_file_bytes / MB:.0f} MB "
                         f"under {', '.join(LARGE_FILE_DIRS)}, and this machine has none "
                         "(--parts without bigpath skips it)")
    size, big = candidates[0]
    parent, name = os.path.split(big)
    files = [big] + [os.path.join(parent, link) for link in symlinks_to(parent, name)]
    tree = []
    for directory, dirs, names in os.walk(TREE_DIR):
        dirs.sort()
        for n in sorted(names):
            full = os.path.join(directory, n)
            info = os.lstat(full)
            if st.S_ISREG(info.st_mode) and info.st_size <= MiB and os.access(full, os.R_OK):
                tree.append((full, info.st_size))
            if len(tree) >= tree_files:
                break
        if len(tree) >= tree_files:
            break
    files += [f for f, _ in tree]
    path_bytes = size + sum(b for _, b in tree)
    entry = {"name": store_name("bigpath", name), "path": "/", "only": None, "small": False,
             "keep": keep_list([f[1:] for f in files]), "bytes": path_bytes, "files": len(files)}
    rest = select_members(path_bytes, path_bytes * 1.1)
    return [entry] + rest


def select_huge(min_file_bytes, target_bytes):
    """The one large path of the `huge` closure: the readable regular ELF files of at least
    `min_file_bytes` under LARGE_FILE_DIRS, smallest first (ties by path), each taken if the total stays
    within `target_bytes`, as one store path `huge-large-files` keeping their absolute layout (here 7
    files of 103–197 MB, 955 MB: lld, libLLVM-14 and -15, libclang, lldb-server, clang-21,
    lib_InternalSwiftScan). The closure is this path plus every member of `full` (~1.43 GB)."""
    chosen, total = [], 0
    for size, full in elf_files(LARGE_FILE_DIRS, min_file_bytes):
        if total + size <= target_bytes:
            chosen.append(full)
            total += size
    if total < 0.8 * target_bytes:
        raise SystemExit(f"bench: the huge closure needs {target_bytes / MB:.0f} MB of ELF files of at least "
                         f"{min_file_bytes / MB:.0f} MB under {', '.join(LARGE_FILE_DIRS)}; this machine has "
                         f"{total / MB:.0f} MB (--parts without huge skips it)")
    return [{"name": "huge-large-files", "path": "/", "only": None, "small": False,
             "keep": keep_list([f[1:] for f in chosen]), "bytes": total, "files": len(chosen)}]


def build_closures(args, keys):
    """Selects members and builds the roots named in `keys` (of full, changed, small, bigpath, huge);
    returns {key: {path, name, closure, nar_bytes, largest_bytes, largest_name}} (and `differ`)."""
    log("selecting files for the benchmark closures")
    manifest_sets = {"members": select_members(args.target_mb * MB, args.cap_mb * MB), "bigpath": [], "huge": []}
    if "bigpath" in keys:
        manifest_sets["bigpath"] = select_bigpath(args.bigpath_file_mb * MB, args.bigpath_tree_files)
        big = manifest_sets["bigpath"][0]
        log(f"bigpath: {big['name']}, {big['files']} files, {big['bytes'] / MB:.0f} MB, among "
            f"{len(manifest_sets['bigpath']) - 1} other members of {sum(m['bytes'] for m in manifest_sets['bigpath'][1:]) / MB:.0f} MB")
    if "huge" in keys:
        manifest_sets["huge"] = select_huge(args.huge_file_mb * MB, args.huge_mb * MB)
        log(f"huge: one path of {manifest_sets['huge'][0]['files']} files, {manifest_sets['huge'][0]['bytes'] / MB:.0f} MB")
    manifest = os.path.join(args.work, "manifest.json")
    with open(manifest, "w") as f:
        json.dump(manifest_sets, f, indent=1, sort_keys=True)
    members = manifest_sets["members"]
    log(f"{len(members)} members, {sum(m['bytes'] for m in members) / MB:.0f} MB of files; importing (nix-build {' '.join(keys)})")
    started = time.monotonic()
    command = ["nix-build", os.path.join(REPO, "bench", "closure.nix"), "--argstr", "manifest", manifest, "--no-out-link"]
    for key in keys:
        command += ["-A", key]
    out = run(command).split()
    log(f"closures ready in {time.monotonic() - started:.0f} s")
    roots = {}
    for key, path in zip(keys, out):
        # One out-link per closure (a GC root; the next run reuses the closure).
        run(["nix-store", "--realise", path, "--add-root", os.path.join(args.work, f"root-{key}"), "--indirect"])
        closure = run(["nix-store", "--query", "--requisites", path]).split()
        sizes = [int(s) for s in run(["nix-store", "--query", "--size"] + closure).split()]
        largest = max(range(len(closure)), key=lambda i: sizes[i])
        roots[key] = {"path": path, "name": os.path.basename(path), "closure": closure, "nar_bytes": sum(sizes),
                      "largest_bytes": sizes[largest], "largest_name": os.path.basename(closure[largest])[33:]}
    full = roots.get("full")
    if full and (len(full["closure"]) < 300 or full["nar_bytes"] < 400 * MB):
        raise SystemExit(f"the closure has {len(full['closure'])} paths and {full['nar_bytes'] / MB:.0f} MB; "
                         "the benchmark needs at least 300 paths and 400 MB (this machine has too few files)")
    bigpath = roots.get("bigpath")
    if bigpath and not 0.4 <= bigpath["largest_bytes"] / bigpath["nar_bytes"] <= 0.6:
        raise SystemExit(f"the bigpath closure's largest path is {bigpath['largest_bytes'] / bigpath['nar_bytes']:.2f} "
                         "of its bytes; the benchmark wants about half (this machine's files do not fit the rules)")
    if "full" in roots and "changed" in roots:
        roots["differ"] = sorted(set(roots["changed"]["closure"]) - set(roots["full"]["closure"]))
    return roots


def read_closure_once(closure):
    """Reads every file of the closure, so the first run does not pay for the disk and the others do
    not: every figure is measured with the store in the page cache."""
    buffer = bytearray(MiB)
    for top in closure:
        for parent, _, files in os.walk(top) if os.path.isdir(top) else [(os.path.dirname(top), [], [os.path.basename(top)])]:
            for name in files:
                full = os.path.join(parent, name)
                if os.path.islink(full):
                    continue
                with open(full, "rb", buffering=0) as f:
                    while f.readinto(buffer):
                        pass


# ----------------------------------------------------------------------------------------------
# Processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid):
    """utime + stime of the process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pids):
    """VmRSS of the processes, summed (a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            total += proc_status_kb(pid, "VmRSS")
        except OSError:
            pass
    return total * 1024 / MB


class RssSampler:
    """Samples the summed VmRSS of `thing.pids()` every `interval` seconds in a thread; `peak` in MB."""

    def __init__(self, thing, interval=0.05):
        self.thing, self.interval, self.peak = thing, interval, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_mb(self.thing.pids()))
            self.done.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.done.set()
        self.thread.join(timeout=5)
        self.peak = max(self.peak, rss_mb(self.thing.pids()))


def machine_busy_seconds():
    """CPU seconds all processes of the machine have used (from /proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# Every process started here that is still running: stopped by main() whatever happens.
LIVE = []


def stop_all():
    for thing in list(LIVE):
        try:
            thing.stop()
        except Exception as error:  # keep stopping the others
            log(f"stopping {thing}: {error}")


class Server:
    """One nix-netboot-serve process on 127.0.0.1 with a state directory of its own."""

    def __init__(self, binary, codec, work, extra=(), state=None):
        """`state`: the state directory of an earlier (stopped) server to start on, cache and all."""
        self.port = free_port()
        self.state = state or tempfile.mkdtemp(prefix=f"server-{codec}-", dir=work)
        self.log_path = self.state + ".log"
        self.log_file = open(self.log_path, "a")
        self.cmd = [binary, "--listen", f"127.0.0.1:{self.port}", "--state-dir", self.state,
                    "--compression", codec, "--log-level", "warning", *extra]
        self.proc = subprocess.Popen(self.cmd, stdout=self.log_file, stderr=subprocess.STDOUT)
        LIVE.append(self)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not answer within 60 s; see {self.log_path}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        return proc_cpu_seconds(self.pid)

    def peak_rss_mb(self):
        return proc_status_kb(self.pid, "VmHWM") * 1024 / MB

    def pids(self):
        return [self.pid]

    def status(self):
        with urllib.request.urlopen(self.base + "/status", timeout=10) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                values[parts[0]] = parts[1] if len(parts) == 2 else " ".join(parts[1:])
        return values

    def url(self, name):
        return f"{self.base}/boot/{name}/initrd"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        if self in LIVE:
            LIVE.remove(self)

    def remove_state(self):
        shutil.rmtree(self.state, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


class Nginx:
    """nginx from Debian on 127.0.0.1, serving one directory with sendfile on; own config, pid, logs."""

    def __init__(self, work, webroot, workers="1"):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=work)
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "tmp"))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
user root;
worker_processes {workers};
worker_rlimit_nofile 4096;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {self.dir}/tmp/body;
    server {{
        listen 127.0.0.1:{self.port};
        root {webroot};
    }}
}}
""")
        self.proc = subprocess.Popen([binary, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr.log"), "w"))
        LIVE.append(self)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}; see {self.dir}/error.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not listen within 20 s")
                time.sleep(0.05)

    def pids(self):
        """The master and its workers."""
        pids = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def cpu(self):
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_seconds(pid)
            except OSError:
                pass
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in LIVE:
            LIVE.remove(self)


def curl(url, output="/dev/null"):
    """One download with curl; returns (seconds total, seconds to first byte, bytes)."""
    out = run(["curl", "-sS", "--max-time", "1200", "-o", output, "-w",
               "%{http_code} %{size_download} %{time_total} %{time_starttransfer}", url])
    code, size, total, first = out.split()
    if code != "200":
        raise RuntimeError(f"GET {url} answered {code}")
    return float(total), float(first), int(size)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Baselines: the closure packed as NixOS's netboot tooling does, all of it, every time.

BASELINES = {
    # codec: [(label, compressor command)], the first one single-threaded
    "zstd": [("zstd -10", "zstd -10 -q -c"), ("zstd -T0 -10", "zstd -T0 -10 -q -c")],
    "gzip": [("gzip -6", "gzip -6 -c")],
    "xz": [("xz -6", "xz -6 --check=crc32 -c"), ("xz -T0 -6", "xz -T0 -6 --check=crc32 -c")],
}


def baselines_for(codec):
    items = list(BASELINES[codec])
    if codec == "gzip" and shutil.which("pigz"):
        items.append(("pigz -6", "pigz -6 -c"))
    return items


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Cores kept busy by other processes of the machine during each measured rebuild (noise indicator).
OTHERS = []


def full_rebuild(root_path, compressor, work):
    """`find <closure> | cpio -o -H newc | COMPRESSOR > file`; returns (seconds, bytes, CPU seconds of
    the whole pipeline)."""
    out = os.path.join(work, "baseline.out")
    script = (f"set -euo pipefail; find $(nix-store --query --requisites {shlex.quote(root_path)}) "
              f"| cpio -o -H newc --quiet | {compressor} > {shlex.quote(out)}")
    cpu0, busy0 = children_cpu(), machine_busy_seconds()
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", script], stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    cpu = children_cpu() - cpu0
    OTHERS.append(max(0.0, machine_busy_seconds() - busy0 - cpu) / seconds)
    if result.returncode != 0:
        raise RuntimeError(f"baseline failed: {script}\n{result.stderr[-2000:]}")
    size = os.path.getsize(out)
    os.unlink(out)
    return seconds, size, cpu


# ----------------------------------------------------------------------------------------------
# Measurements


class Figures:
    """Named lists of samples."""

    def __init__(self):
        self.samples = {}
        self.info = {}

    def add(self, key, value):
        self.samples.setdefault(key, []).append(value)

    def get(self, key):
        return self.samples.get(key, [])


def measure_cold(args, figures, codec, root, key, work, changed=None, keep_last=False):
    """Cold runs: a fresh server with an empty cache and one `GET /boot/NAME/initrd`, then the same
    closure through each full-rebuild pipeline of the codec (interleaved, run by run); for `changed`
    also the incremental initrd after the cold one, against the full rebuild of `changed`. Figures go
    under `key` (`zstd`, `bigpath.zstd`, …). Returns the last server, still running, if `keep_last`."""
    name = root["name"]
    last_server = None
    for i in range(args.cold_runs):
        log(f"{key}: cold run {i + 1}/{args.cold_runs} (load {loadavg()})")
        server = Server(args.binary, codec, work)
        try:
            cpu0, busy0 = server.cpu(), machine_busy_seconds()
            seconds, first_byte, size = curl(server.url(name))
            cpu = server.cpu() - cpu0
            figures.add(f"{key}.cold", seconds)
            figures.add(f"{key}.cold.first_byte", first_byte)
            figures.add(f"{key}.cold.cpu", cpu)
            figures.add(f"{key}.cold.cores", cpu / seconds)
            figures.add(f"{key}.cold.others", max(0.0, machine_busy_seconds() - busy0 - cpu) / seconds)
            figures.add(f"{key}.cold.rss", server.peak_rss_mb())
            figures.add(f"{key}.initrd_bytes.runs", size)
            figures.info[f"{key}.initrd_bytes"] = size
            status = server.status()
            figures.info[f"{key}.cold.packed"] = int(status.get("archives-packed", -1))
            if changed is not None:
                before = int(status.get("archives-packed", 0))
                seconds, _, _ = curl(server.url(changed["name"]))
                figures.add(f"{key}.incremental", seconds)
                figures.info[f"{key}.incremental.packed"] = int(server.status().get("archives-packed", 0)) - before
            if keep_last and i == args.cold_runs - 1:
                last_server = server
        finally:
            if server is not last_server:
                server.stop()
                server.remove_state()
        for label, command in baselines_for(codec):
            del OTHERS[:]
            seconds, size, cpu = full_rebuild(root["path"], command, work)
            figures.add(f"{key}.rebuild.{label}.others", OTHERS[-1])
            figures.add(f"{key}.rebuild.{label}", seconds)
            figures.add(f"{key}.rebuild.{label}.cpu", cpu)
            figures.add(f"{key}.rebuild.{label}.bytes.runs", size)
            figures.info[f"{key}.rebuild.{label}.bytes"] = size
        if changed is not None:
            label, command = baselines_for(codec)[0]
            seconds, _, _ = full_rebuild(changed["path"], command, work)
            figures.add(f"{key}.rebuild_changed", seconds)
    return last_server


def measure_codec(args, codec, root, changed, roots, figures, work):
    """Cold runs (server vs full rebuilds), incremental (zstd), warm runs vs nginx."""
    name = root["name"]
    reference = None
    last_server = measure_cold(args, figures, codec, root, codec, work, changed=changed, keep_last=True)

    # Warm: the last cold server has the closure cached; nginx serves the same bytes as one file.
    server = last_server
    webroot = tempfile.mkdtemp(prefix="www-", dir=work)
    nginx = None
    try:
        static = os.path.join(webroot, "initrd")
        curl(server.url(name), output=static)
        reference = sha256_of(static)
        figures.info[f"{codec}.sha256"] = reference
        nginx = Nginx(work, webroot)
        _, _, nginx_size = curl(nginx.base + "/initrd")
        if nginx_size != os.path.getsize(static):
            raise RuntimeError("nginx served a different length")
        # One unmeasured round each, then alternate.
        curl(server.url(name))
        curl(nginx.base + "/initrd")
        server_cpu, nginx_cpu, server_bytes, nginx_bytes = 0.0, 0.0, 0, 0
        log(f"{codec}: warm runs ({args.warm_runs} each, alternating; load {loadavg()})")
        for _ in range(args.warm_runs):
            c0 = server.cpu()
            seconds, _, size = curl(server.url(name))
            server_cpu += server.cpu() - c0
            server_bytes += size
            figures.add(f"{codec}.warm", seconds)
            c0 = nginx.cpu()
            seconds, _, size = curl(nginx.base + "/initrd")
            nginx_cpu += nginx.cpu() - c0
            nginx_bytes += size
            figures.add(f"{codec}.warm.nginx", seconds)
        figures.info[f"{codec}.warm.cpu_per_gb"] = server_cpu / (server_bytes / 1e9)
        figures.info[f"{codec}.warm.nginx_cpu_per_gb"] = nginx_cpu / (nginx_bytes / 1e9)
        figures.info[f"{codec}.warm.rss"] = server.peak_rss_mb()
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()
        server.remove_state()
        shutil.rmtree(webroot, ignore_errors=True)
    return reference


def measure_concurrency(args, root, figures, work, reference):
    """N concurrent cold downloads of one closure from a fresh server: CPU, wall, peak RSS, bytes."""
    name = root["name"]
    for i in range(args.concurrent_runs):
        log(f"zstd: {args.clients} concurrent cold downloads, run {i + 1}/{args.concurrent_runs} (load {loadavg()})")
        server = Server(args.binary, "zstd", work)
        try:
            barrier = threading.Barrier(args.clients + 1)
            results = [None] * args.clients

            def client(index):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=900)
                    conn.connect()
                    barrier.wait(timeout=60)
                    conn.request("GET", f"/boot/{name}/initrd")
                    response = conn.getresponse()
                    expected = int(response.getheader("Content-Length", "-1"))
                    digest = hashlib.sha256()
                    buffer = memoryview(bytearray(MiB))
                    received = 0
                    while True:
                        n = response.readinto(buffer)
                        if not n:
                            break
                        digest.update(buffer[:n])
                        received += n
                    conn.close()
                    ok = response.status == 200 and received == expected
                    results[index] = (ok, digest.hexdigest(), received, response.status, None)
                except Exception as error:  # recorded as a failure, reported below
                    results[index] = (False, None, 0, 0, repr(error))

            threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
            for t in threads:
                t.start()
            cpu0 = server.cpu()
            barrier.wait(timeout=60)
            started = time.monotonic()
            for t in threads:
                t.join(timeout=1200)
            wall = time.monotonic() - started
            cpu = server.cpu() - cpu0
            rss = server.peak_rss_mb()
            failures = [r for r in results if r is None or not r[0]]
            digests = {r[1] for r in results if r is not None and r[0]}
            mismatched = sum(1 for r in results if r is not None and r[0] and r[1] != reference)
            figures.add("concurrent.wall", wall)
            figures.add("concurrent.cpu", cpu)
            figures.add("concurrent.rss", rss)
            figures.add("concurrent.failures", len(failures) + mismatched)
            figures.info["concurrent.packed"] = int(server.status().get("archives-packed", -1))
            figures.info.setdefault("concurrent.distinct_digests", set()).update(digests)
            for r in failures[:3]:
                log(f"  failed download: {r}")
        finally:
            server.stop()
            server.remove_state()


def measure_huge(args, root, figures, work):
    """The huge closure (~1.5 GB, one ~1 GB path of large files): cold zstd packs through a fresh
    server, each one `GET initrd`; wall, server CPU, cores busy and the peak RSS (VmHWM) of the server."""
    for i in range(args.huge_runs):
        log(f"huge: cold zstd run {i + 1}/{args.huge_runs}, {root['nar_bytes'] / MB:.0f} MB (load {loadavg()})")
        # The default cache limit (5 GiB) holds the huge initrd; it is given explicitly so a change of
        # the default cannot make this run evict its own archives.
        server = Server(args.binary, "zstd", work, extra=["--max-cpio-cache-bytes", str(8 << 30)])
        try:
            cpu0 = server.cpu()
            seconds, _, size = curl(server.url(root["name"]))
            cpu = server.cpu() - cpu0
            figures.add("huge.cold", seconds)
            figures.add("huge.cold.cpu", cpu)
            figures.add("huge.cold.cores", cpu / seconds)
            figures.add("huge.cold.rss", server.peak_rss_mb())
            figures.info["huge.initrd_bytes"] = size
            figures.info["huge.cold.packed"] = int(server.status().get("archives-packed", -1))
        finally:
            server.stop()
            server.remove_state()


class HerdConnection:
    """One client of the herd: its socket, the response head as it arrives, and what the body held."""

    def __init__(self, index, sock, hash_all):
        self.index, self.sock = index, sock
        self.head = bytearray()
        self.status, self.length, self.received, self.reads = 0, -1, 0, 0
        self.first = hashlib.sha256()  # of the body's first MiB, every client
        self.whole = hashlib.sha256() if hash_all else None
        self.error = None
        self.done = False
        self.sent = self.ended = 0.0  # monotonic times of the request and of the last byte or error

    def feed(self, data):
        """Takes bytes from the socket (a memoryview); returns True when the body is complete."""
        if self.length < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    raise RuntimeError("response head over 64 KiB")
                return False
            lines = bytes(self.head[:end]).decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    self.length = int(v.strip())
            if self.length < 0:
                raise RuntimeError(f"status {self.status} without Content-Length")
            data = memoryview(bytes(self.head[end + 4:]))
            self.head = bytearray()
        if data:
            if self.received < MiB:
                self.first.update(data[:MiB - self.received])
            if self.whole is not None:
                self.whole.update(data)
            self.received += len(data)
        return self.received >= self.length


def herd_once(port, path, clients, threads, hash_every, deadline_seconds=900):
    """`clients` connections, all open before the first request, released at once; each reads the
    whole body (recv_into a 1 MiB buffer, `threads` threads each polling its share of the sockets).
    Returns (wall seconds from the first request to the last byte, [HerdConnection], client CPU s)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    connections = []
    try:
        for k in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            connections.append(HerdConnection(k, sock, k % hash_every == 0))
        barrier = threading.Barrier(threads + 1)
        deadline = [0.0]

        def worker(share):
            selector = selectors.DefaultSelector()
            buffer = memoryview(bytearray(MiB))
            barrier.wait(timeout=60)
            for c in share:
                try:
                    c.sent = time.monotonic()
                    c.sock.sendall(request)
                    c.sock.setblocking(False)
                    selector.register(c.sock, selectors.EVENT_READ, c)
                except OSError as error:
                    c.error, c.done = repr(error), True
            open_count = len(selector.get_map())
            while open_count and time.monotonic() < deadline[0]:
                for key, _ in selector.select(timeout=1.0):
                    c = key.data
                    try:
                        while True:
                            n = c.sock.recv_into(buffer)
                            c.reads += 1
                            if n == 0:
                                raise RuntimeError(f"closed after {c.received} of {c.length} body bytes")
                            if c.feed(buffer[:n]):
                                c.done = True
                                break
                    except BlockingIOError:
                        continue
                    except Exception as error:  # recorded as a failure, reported by the caller
                        c.error = repr(error)
                        c.done = True
                    c.ended = time.monotonic()
                    selector.unregister(c.sock)
                    open_count -= 1
            for key in list(selector.get_map().values()):
                key.data.error = key.data.error or "deadline"
            selector.close()

        shares = [connections[t::threads] for t in range(threads)]
        workers = [threading.Thread(target=worker, args=(share,), daemon=True) for share in shares]
        for w in workers:
            w.start()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        deadline[0] = time.monotonic() + deadline_seconds
        started = time.monotonic()
        barrier.wait(timeout=60)
        for w in workers:
            w.join(timeout=deadline_seconds + 60)
        wall = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        return wall, connections, client_cpu
    finally:
        for c in connections:
            c.sock.close()


def herd_failures(connections, length, reference, first_reference):
    """Connections that did not get exactly the reference bytes (status, length, first MiB, sha256)."""
    failures = []
    for c in connections:
        ok = (c.error is None and c.status == 200 and c.length == length and c.received == length
              and c.first.hexdigest() == first_reference
              and (c.whole is None or c.whole.hexdigest() == reference))
        if not ok:
            failures.append((c.index, c.status, c.length, c.received, c.error))
    return failures


def measure_herd(args, root, figures, work):
    """200 concurrent warm downloads of the `full` zstd initrd: the server restarted on a warm cache
    against nginx (`sendfile on`) serving the same bytes, alternating, `--herd-runs` each."""
    name = root["name"]
    webroot = tempfile.mkdtemp(prefix="www-herd-", dir=work)
    static = os.path.join(webroot, "initrd")
    packer = Server(args.binary, "zstd", work)
    state = packer.state
    server = nginx = None
    try:
        log(f"herd: packing the full zstd initrd (load {loadavg()})")
        curl(packer.url(name), output=static)
        packer.stop()
        length = os.path.getsize(static)
        reference = sha256_of(static)
        with open(static, "rb") as f:
            first_reference = hashlib.sha256(f.read(MiB)).hexdigest()
        figures.info["herd.initrd_bytes"] = length
        figures.info["herd.sha256"] = reference
        server = Server(args.binary, "zstd", work, state=state)
        nginx = Nginx(work, webroot, workers=args.herd_nginx_workers)
        for url in [server.url(name), nginx.base + "/initrd"]:  # one unmeasured download each
            _, _, size = curl(url)
            if size != length:
                raise RuntimeError(f"{url} sent {size} bytes, not {length}")
        figures.info["herd.nginx_workers"] = len(nginx.pids()) - 1
        figures.info["herd.server.rss_before"] = rss_mb(server.pids())
        figures.info["herd.nginx.rss_before"] = rss_mb(nginx.pids())
        for i in range(args.herd_runs):
            for who, thing, path in [("server", server, f"/boot/{name}/initrd"), ("nginx", nginx, "/initrd")]:
                log(f"herd: {args.herd_clients} clients on {who}, run {i + 1}/{args.herd_runs} (load {loadavg()})")
                cpu0 = thing.cpu()
                with RssSampler(thing) as sampler:
                    wall, connections, client_cpu = herd_once(thing.port, path, args.herd_clients,
                                                               args.herd_threads, args.herd_hash_every)
                cpu = thing.cpu() - cpu0
                failures = herd_failures(connections, length, reference, first_reference)
                received = sum(c.received for c in connections)
                figures.add(f"herd.{who}.throughput", received / wall)
                figures.add(f"herd.{who}.wall", wall)
                figures.add(f"herd.{who}.cpu", cpu)
                figures.add(f"herd.{who}.client_cpu", client_cpu)
                figures.add(f"herd.{who}.rss", sampler.peak)
                figures.add(f"herd.{who}.failures", len(failures))
                figures.add(f"herd.{who}.hashed", sum(1 for c in connections if c.whole is not None))
                figures.add(f"herd.{who}.bytes_per_read", received / max(1, sum(c.reads for c in connections)))
                if who == "server":
                    figures.add("herd.server.hwm", server.peak_rss_mb())
                for failure in failures[:3]:
                    log(f"  herd failure on {who}: {failure}")
                log(f"  {received / wall / 1e9:.2f} GB/s in {wall:.2f} s; {who} CPU {cpu:.1f} s, "
                    f"client CPU {client_cpu:.1f} s, peak RSS {sampler.peak:.0f} MB, {len(failures)} failed")
    finally:
        for thing in [nginx, server, packer]:
            if thing is not None:
                thing.stop()
        shutil.rmtree(state, ignore_errors=True)
        try:
            os.unlink(state + ".log")
        except OSError:
            pass
        shutil.rmtree(webroot, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The table


def spread(values, unit, digits=2):
    if not values:
        return "—"
    med = statistics.median(values)
    return f"{med:.{digits}f} {unit} ({min(values):.{digits}f}–{max(values):.{digits}f})".replace(" )", ")")


def ratio_text(ours, theirs):
    """Ratio of medians, with the spread of the per-run ratios (runs paired in order)."""
    if not ours or not theirs:
        return "—", None
    r = statistics.median(ours) / statistics.median(theirs)
    pairs = [a / b for a, b in zip(ours, theirs) if b > 0]
    if pairs:
        return f"**{r:.3f}** ({min(pairs):.3f}–{max(pairs):.3f})", r
    return f"**{r:.3f}**", r


def verdict(value, limit):
    if value is None:
        return "—"
    return "PASS" if value <= limit else "MISS"


def verdict_at_least(value, limit):
    if value is None:
        return "—"
    return "PASS" if value >= limit else "MISS"


def server_version(binary):
    """The commit the binary was built from, as far as the work tree tells."""
    try:
        commit = run(["git", "-C", REPO, "log", "-1", "--date=format-local:%Y-%m-%d %H:%M UTC",
                      "--format=%h (committed %ad)"], env={**os.environ, "TZ": "UTC"}).strip()
        dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "Sources", "Package.swift"]).strip()
    except Exception:
        return f"`{binary}` (no git information)"
    built = datetime.datetime.fromtimestamp(os.path.getmtime(binary), datetime.timezone.utc)
    return (f"binary built {built.strftime('%Y-%m-%d %H:%M UTC')} (release); the work tree is at commit {commit}"
            f"{', with uncommitted changes in Sources/' if dirty else ''}")


def make_report(args, roots, figures, started, finished, xz_root_key):
    f = figures
    rows = []

    def row(figure, ours, theirs, ratio, goal="", result=""):
        rows.append(f"| {figure} | {ours} | {theirs} | {ratio} | {goal} | {result} |")

    def cold_rows(key, codec, which):
        """Cold figures of one codec on one closure, against its full-rebuild pipelines."""
        cold = f.get(f"{key}.cold")
        single = baselines_for(codec)[0][0]
        for k, (label, _) in enumerate(baselines_for(codec)):
            base = f.get(f"{key}.rebuild.{label}")
            text, r = ratio_text(cold, base)
            if k == 0:
                row(f"cold {codec}, {which}: `GET initrd`, empty cache vs `find \\| cpio \\| {label}`",
                    spread(cold, "s"), spread(base, "s"), text, "≤ 0.55", verdict(r, 0.55))
            elif codec == "zstd":
                row(f"cold {codec}, {which}: vs `find \\| cpio \\| {label}`", spread(cold, "s"), spread(base, "s"),
                    text, "≤ 0.90", verdict(r, 0.90))
            else:
                row(f"cold {codec}, {which}: vs `find \\| cpio \\| {label}`", spread(cold, "s"), spread(base, "s"), text, "", "")
        cpu, base_cpu = f.get(f"{key}.cold.cpu"), f.get(f"{key}.rebuild.{single}.cpu")
        text, r = ratio_text(cpu, base_cpu)
        goal, result = ("≤ 0.90", verdict(r, 0.90)) if codec == "zstd" else ("", "")
        row(f"cold {codec}, {which}, CPU seconds: the server process vs the whole `{single}` pipeline (load-independent)",
            spread(cpu, "s"), spread(base_cpu, "s"), text, goal, result)
        if codec == "zstd":
            cores = f.get(f"{key}.cold.cores")
            med = statistics.median(cores) if cores else None
            row(f"cold {codec}, {which}: cores busy in the server through the cold pack (CPU seconds / wall)",
                spread(cores, "cores"), "", "", "≥ 1.85", verdict_at_least(med, 1.85))
            sizes, base_sizes = f.get(f"{key}.initrd_bytes.runs"), f.get(f"{key}.rebuild.{single}.bytes.runs")
            text, r = ratio_text(sizes, base_sizes)
            mb = lambda v: [x / MB for x in v]  # noqa: E731
            row(f"cold {codec}, {which}: initrd size vs the single-stream rebuild (`{single}`)",
                spread(mb(sizes), "MB", 1), spread(mb(base_sizes), "MB", 1), text, "≤ 1.03", verdict(r, 1.03))

    full, small = roots.get("full"), roots.get("small")
    for codec in args.codecs:
        if not f.get(f"{codec}.cold"):
            continue
        root = roots[xz_root_key] if codec == "xz" else full
        which = "small closure" if root is small else "full closure"
        cold_rows(codec, codec, which)
        if f.get(f"{codec}.incremental"):
            inc, base = f.get(f"{codec}.incremental"), f.get(f"{codec}.rebuild_changed")
            text, r = ratio_text(inc, base)
            row(f"incremental {codec}: second closure after the first vs its full rebuild (`{baselines_for(codec)[0][0]}`)",
                spread(inc, "s", 3), spread(base, "s"), text, "≤ 0.05", verdict(r, 0.05))
        warm, ng = f.get(f"{codec}.warm"), f.get(f"{codec}.warm.nginx")
        text, r = ratio_text(warm, ng)
        size = f.info.get(f"{codec}.initrd_bytes", 0)
        row(f"warm {codec}: cached initrd ({size / MB:.0f} MB) vs nginx `sendfile on`, same bytes",
            spread(warm, "s", 3), spread(ng, "s", 3), text, "≤ 1.15", verdict(r, 1.15))

    if f.get("bigpath.zstd.cold"):
        b = roots["bigpath"]
        cold_rows("bigpath.zstd", "zstd", f"bigpath closure (largest path {b['largest_bytes'] / b['nar_bytes']:.0%} of it)")

    if f.get("concurrent.cpu"):
        one_cpu, one_wall, one_rss = f.get("zstd.cold.cpu"), f.get("zstd.cold"), f.get("zstd.cold.rss")
        cpu, wall, rss = f.get("concurrent.cpu"), f.get("concurrent.wall"), f.get("concurrent.rss")
        text, r = ratio_text(cpu, one_cpu)
        row(f"{args.clients} concurrent cold zstd: server CPU (utime+stime) vs one cold download",
            spread(cpu, "s"), spread(one_cpu, "s"), text, "≤ 1.2", verdict(r, 1.2))
        text, _ = ratio_text(wall, one_wall)
        row(f"{args.clients} concurrent cold zstd: wall time until the last byte vs one", spread(wall, "s"),
            spread(one_wall, "s"), text, "", "")
        peak = max(rss)
        row(f"{args.clients} concurrent cold zstd: peak RSS of the server (VmHWM) vs one", spread(rss, "MB", 0),
            spread(one_rss, "MB", 0), "", "≤ 300 MB", "PASS" if peak <= 300 else "MISS")
        fails = sum(f.get("concurrent.failures"))
        digests = f.info.get("concurrent.distinct_digests", set())
        single = f.info.get("zstd.sha256")
        if single:
            identical = len(digests) == 1 and single in digests
            said = f"sha256 {'identical to' if identical else 'DIFFERENT from'} the single download"
        else:  # no cold part in this run: the downloads are compared with each other
            identical = len(digests) == 1
            said = f"sha256 {'the same' if identical else 'DIFFERENT'} in every download"
        row(f"{args.clients} concurrent cold zstd: failed or differing downloads, all runs",
            f"{fails} of {args.clients * args.concurrent_runs}; {said}",
            "", "", "0", "PASS" if fails == 0 and identical else "MISS")

    if f.get("huge.cold"):
        h = roots["huge"]
        which = (f"huge closure ({len(h['closure'])} paths, {h['nar_bytes'] / MB:.0f} MB; "
                 f"largest path {h['largest_bytes'] / MB:.0f} MB)")
        rss = f.get("huge.cold.rss")
        row(f"cold zstd, {which}: peak RSS of the server (VmHWM)", spread(rss, "MB", 0), "", "", "≤ 250 MB",
            "PASS" if max(rss) <= 250 else "MISS")
        row(f"cold zstd, huge closure: wall time; server CPU; cores busy",
            f"{spread(f.get('huge.cold'), 's')}; {spread(f.get('huge.cold.cpu'), 's')}; "
            f"{spread(f.get('huge.cold.cores'), 'cores')}", "", "", "", "")

    if f.get("herd.server.throughput"):
        n = args.herd_clients
        size = f.info.get("herd.initrd_bytes", 0)
        gbs = lambda v: [x / 1e9 for x in v]  # noqa: E731
        ours, theirs = f.get("herd.server.throughput"), f.get("herd.nginx.throughput")
        text, r = ratio_text(ours, theirs)
        row(f"herd: {n} concurrent warm downloads of the full zstd initrd ({size / MB:.0f} MB), server restarted "
            f"on a warm cache vs nginx `sendfile on` ({f.info.get('herd.nginx_workers', '?')} workers): aggregate throughput "
            "(body bytes received / wall; above 1: the server is faster)",
            spread(gbs(ours), "GB/s"), spread(gbs(theirs), "GB/s"), text, "≥ 0.8", verdict_at_least(r, 0.8))
        text, _ = ratio_text(f.get("herd.server.wall"), f.get("herd.nginx.wall"))
        row(f"herd: wall time until the last byte", spread(f.get("herd.server.wall"), "s"),
            spread(f.get("herd.nginx.wall"), "s"), text, "", "")
        hwm = f.get("herd.server.hwm")
        peak = max(hwm + f.get("herd.server.rss"))
        row(f"herd: peak RSS of the server over the {len(hwm)} herds (VmHWM; sampled VmRSS every 50 ms) "
            f"vs nginx (VmRSS of all its processes, sampled)",
            f"{peak:.0f} MB (sampled {spread(f.get('herd.server.rss'), 'MB', 0)})",
            spread(f.get("herd.nginx.rss"), "MB", 0), "", "≤ 150 MB", "PASS" if peak <= 150 else "MISS")
        fails, nfails = sum(f.get("herd.server.failures")), sum(f.get("herd.nginx.failures"))
        row(f"herd: failed, short or differing downloads, all runs",
            f"{fails} of {n * len(ours)}", f"{nfails} of {n * len(theirs)}", "", "0", "PASS" if fails == 0 else "MISS")

    lines = []
    lines.append(f"# nix-netboot-serve benchmark — {finished.strftime('%Y-%m-%d %H:%M UTC')}")
    lines.append("")
    lines.append("Times are medians over the runs, with the spread (min–max) in brackets. A ratio is the median of "
                 "nix-netboot-serve over the median of the alternative (below 1: the server is faster); the "
                 "brackets give the lowest and highest ratio of the runs taken in pairs. Goals are reported, not asserted.")
    lines.append("")
    lines.append("| figure | nix-netboot-serve | alternative | ratio | goal | result |")
    lines.append("|---|---|---|---|---|---|")
    lines += rows
    lines.append("")
    lines.append("## Details")
    lines.append("")
    for key in ["full", "changed", "small", "bigpath", "huge"]:
        if key not in roots:
            continue
        r = roots[key]
        lines.append(f"- closure `{key}`: {len(r['closure'])} store paths, {r['nar_bytes'] / MB:.0f} MB (NAR), root "
                     f"`{r['name']}`; largest path `{r['largest_name']}`, {r['largest_bytes'] / MB:.0f} MB "
                     f"({r['largest_bytes'] / r['nar_bytes']:.0%})")
    if "differ" in roots:
        lines.append(f"- `changed` has {len(roots['differ'])} paths that `full` has not: "
                     + ", ".join(f"`{os.path.basename(p)[33:]}`" for p in roots["differ"]))
    lines.append(f"- parts: {', '.join(args.parts)}; runs: {args.cold_runs} cold per codec and closure (each on a fresh "
                 f"server, state in a new directory), {args.warm_runs} warm per codec and for nginx (alternating, after "
                 f"one unmeasured round each), {args.concurrent_runs} × {args.clients} concurrent, {args.huge_runs} huge, "
                 f"{args.herd_runs} × {args.herd_clients} herd on each side (alternating); the store is read once "
                 "beforehand so every figure is taken with it in the page cache")
    keys = [(c, c) for c in args.codecs if f.get(c + ".cold")]
    if f.get("bigpath.zstd.cold"):
        keys.append(("bigpath.zstd", "zstd"))
    for key, codec in keys:
        parts = [f"initrd {f.info.get(key + '.initrd_bytes', 0) / MB:.1f} MB"]
        for label, _ in baselines_for(codec):
            b = f.info.get(f"{key}.rebuild.{label}.bytes")
            if b:
                parts.append(f"`{label}` rebuild {b / MB:.1f} MB, CPU {spread(f.get(f'{key}.rebuild.{label}.cpu'), 's')}")
        parts.append(f"archives packed cold {f.info.get(key + '.cold.packed', '?')}")
        if f"{key}.incremental.packed" in f.info:
            parts.append(f"incremental packed {f.info[key + '.incremental.packed']}")
        if f.get(f"{key}.cold.first_byte"):
            parts.append(f"cold time to first byte {spread(f.get(key + '.cold.first_byte'), 's')}")
        parts.append(f"cold server CPU {spread(f.get(key + '.cold.cpu'), 's')}, "
                     f"i.e. {spread(f.get(key + '.cold.cores'), 'cores')} busy on average")
        parts.append(f"cold peak RSS {spread(f.get(key + '.cold.rss'), 'MB', 0)}")
        if f"{key}.warm.cpu_per_gb" in f.info:
            parts.append(f"warm CPU {f.info[key + '.warm.cpu_per_gb']:.2f} s/GB (nginx {f.info[key + '.warm.nginx_cpu_per_gb']:.2f} s/GB)")
        lines.append(f"- {key}: " + "; ".join(parts))
    noise = []
    for key, codec in keys:
        noise.append(f"{key} server cold runs {spread(f.get(key + '.cold.others'), 'cores')}")
        for label, _ in baselines_for(codec):
            noise.append(f"`{label}` rebuilds {spread(f.get(f'{key}.rebuild.{label}.others'), 'cores')}")
    if noise:
        lines.append("- other processes of the machine (not the one measured) kept busy on average, out of "
                     f"{os.cpu_count()} cores: " + "; ".join(noise))
    if "huge.initrd_bytes" in f.info:
        lines.append(f"- huge: initrd {f.info['huge.initrd_bytes'] / MB:.0f} MB, {f.info.get('huge.cold.packed', '?')} "
                     "archives packed; cache limit given as 8 GiB")
    if f.get("herd.server.throughput"):
        herd = []
        for who in ["server", "nginx"]:
            herd.append(f"{who}: CPU {spread(f.get(f'herd.{who}.cpu'), 's')} per herd, clients' CPU "
                        f"{spread(f.get(f'herd.{who}.client_cpu'), 's')}, bodies hashed whole per herd: "
                        f"{statistics.median(f.get(f'herd.{who}.hashed')):.0f} (every body's length and first MiB checked), "
                        f"{statistics.median(f.get(f'herd.{who}.bytes_per_read')) / 1024:.0f} KiB per client read")
        lines.append(f"- herd ({args.herd_threads} client threads polling the sockets, 1 MiB reads): " + "; ".join(herd)
                     + f"; RSS before the herds, after one download each: server {f.info.get('herd.server.rss_before', 0):.0f} MB, "
                     f"nginx {f.info.get('herd.nginx.rss_before', 0):.0f} MB")
    if "concurrent.packed" in f.info:
        lines.append(f"- concurrent runs packed {f.info['concurrent.packed']} archives each (each path once for all clients)")
    lines.append(f"- machine: {os.cpu_count()} cores, {platform.platform()}; load average {figures.info['load_start']} at the start, "
                 f"{loadavg()} at the end; duration {(finished - started).total_seconds() / 60:.1f} min")
    lines.append(f"- server: {server_version(args.binary)}")
    if args.note:
        lines.append(f"- note: {args.note}")
    lines.append(f"- command: `make bench` (driver: `{' '.join(shlex.quote(a) for a in sys.argv)}`)")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------

PARTS = {
    "cold": "cold, incremental and warm runs of each --codecs on the full closure (xz: --xz-closure)",
    "bigpath": "cold zstd runs on the bigpath closure (its largest path half its bytes, one ≥ 150 MB file)",
    "concurrent": "--clients concurrent cold zstd downloads of the full closure",
    "huge": "one cold zstd pack of the ~1.5 GB huge closure: the server's peak RSS",
    "herd": "--herd-clients concurrent warm downloads of the full zstd initrd, the server against nginx",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, ".build-bench", "release", "nix-netboot-serve"))
    parser.add_argument("--work", default="/var/tmp/nix-netboot-serve-bench",
                        help="manifest, out-links (GC roots of the closures) and per-run state")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "latest.md"))
    parser.add_argument("--codecs", default="zstd,gzip,xz")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=7)
    parser.add_argument("--concurrent-runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--target-mb", type=int, default=440, help="files selected for the full closure, at least")
    parser.add_argument("--cap-mb", type=int, default=520, help="… and at most (large files are skipped past it)")
    parser.add_argument("--xz-closure", choices=["small", "full"], default="small",
                        help="xz packs at ~2 MB/s per core: on the full closure its runs alone take ~30 min")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="what to run, comma-separated, of: " + "; ".join(f"{k} — {v}" for k, v in PARTS.items()))
    parser.add_argument("--bigpath-file-mb", type=int, default=150,
                        help="bigpath: its largest path holds the smallest ELF file of at least this size")
    parser.add_argument("--bigpath-tree-files", type=int, default=4000,
                        help="bigpath: … and this many small files of /usr/include")
    parser.add_argument("--huge-mb", type=int, default=1000, help="huge: the size of its one path of large files")
    parser.add_argument("--huge-file-mb", type=int, default=100, help="huge: … made of ELF files of at least this size")
    parser.add_argument("--huge-runs", type=int, default=1)
    parser.add_argument("--herd-clients", type=int, default=200)
    parser.add_argument("--herd-runs", type=int, default=3, help="herds on the server, alternating with as many on nginx")
    parser.add_argument("--herd-threads", type=int, default=4, help="client threads, each polling its share of the sockets")
    parser.add_argument("--herd-hash-every", type=int, default=50,
                        help="every Nth herd client hashes the whole body (all check length and the first MiB)")
    parser.add_argument("--herd-nginx-workers", default="auto", help="nginx worker_processes for the herd")
    parser.add_argument("--note", default="", help="a line added to the report (e.g. the machine was shared)")
    args = parser.parse_args()
    args.codecs = [c for c in args.codecs.split(",") if c]
    for c in args.codecs:
        if c not in BASELINES:
            parser.error(f"unknown codec {c}")
    args.parts = [p for p in args.parts.split(",") if p]
    for p in args.parts:
        if p not in PARTS:
            parser.error(f"unknown part {p} (known: {', '.join(PARTS)})")
    if args.cold_runs < 1 or args.warm_runs < 1 or args.concurrent_runs < 0 or args.clients < 1:
        parser.error("run counts must be positive")
    if args.huge_runs < 1 or args.herd_runs < 1 or args.herd_clients < 1 or args.herd_threads < 1 or args.herd_hash_every < 1:
        parser.error("run counts must be positive")
    if not os.access(args.binary, os.X_OK):
        parser.error(f"no server binary at {args.binary} (build it: scripts/bench.sh does)")

    started = datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(args.work, exist_ok=True)
    figures = Figures()
    figures.info["load_start"] = loadavg()
    parts = set(args.parts)
    keys = []
    if "cold" in parts or "concurrent" in parts or "herd" in parts:
        keys.append("full")
    if "cold" in parts and "zstd" in args.codecs:
        keys.append("changed")
    if "cold" in parts and "xz" in args.codecs and args.xz_closure == "small":
        keys.append("small")
    keys += [k for k in ["bigpath", "huge"] if k in parts]
    roots = build_closures(args, keys)
    for key in keys:
        log(f"closure {key}: {len(roots[key]['closure'])} paths, {roots[key]['nar_bytes'] / MB:.0f} MB; "
            f"largest path {roots[key]['largest_name']}, {roots[key]['largest_bytes'] / MB:.0f} MB")
    log("reading the closures once (page cache)")
    read_closure_once(sorted(set(p for key in keys for p in roots[key]["closure"])))

    run_dir = tempfile.mkdtemp(prefix="run-", dir=args.work)
    try:
        reference = None
        if "cold" in parts:
            for codec in args.codecs:
                root = roots[args.xz_closure] if codec == "xz" else roots["full"]
                changed = roots["changed"] if codec == "zstd" else None
                digest = measure_codec(args, codec, root, changed, roots, figures, run_dir)
                if codec == "zstd":
                    reference = digest
        if "bigpath" in parts:
            measure_cold(args, figures, "zstd", roots["bigpath"], "bigpath.zstd", run_dir)
        if "concurrent" in parts and args.concurrent_runs > 0:
            measure_concurrency(args, roots["full"], figures, run_dir, reference)
        if "huge" in parts:
            measure_huge(args, roots["huge"], figures, run_dir)
        if "herd" in parts:
            measure_herd(args, roots["full"], figures, run_dir)
    finally:
        stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)

    finished = datetime.datetime.now(datetime.timezone.utc)
    report = make_report(args, roots, figures, started, finished, args.xz_closure)
    with open(os.path.join(args.work, "samples.json"), "w") as out:
        json.dump({"samples": figures.samples,
                   "info": {k: (sorted(v) if isinstance(v, set) else v) for k, v in figures.info.items()}}, out, indent=1)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as out:
        out.write(report)
    print(report)
    log(f"written to {args.output}; raw samples in {os.path.join(args.work, 'samples.json')}")


if __name__ == "__main__":
    # SIGTERM/SIGHUP end the run like Ctrl-C: through main()'s clean-up.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()

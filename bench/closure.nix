# The benchmark closures, made of real files of this machine.
#
#   nix-build bench/closure.nix --argstr manifest MANIFEST.json -A full -A changed -A small -A bigpath -A huge
#
# MANIFEST.json is written by bench/bench.py (`select_members`, `select_bigpath`, `select_huge`):
#   { "members": [MEMBER…], "bigpath": [MEMBER…], "huge": [MEMBER…] }, each member
#   { "name": "doc-zstd", "path": "/usr/share/doc/zstd", "only": null | ["libz.so.1.2.13", …],
#     "keep": null | ["usr", "usr/include", "usr/include/zlib.h", …], "small": bool }
# A member is imported as it is on disk with builtins.path; with `only`, the member is the directory
# `path` filtered down to those top-level names (a library file and the symlinks that point to it),
# which gives a directory-shaped store path like a package's `lib/`; with `keep`, it is the tree under
# `path` filtered down to exactly those relative paths (every kept file and each of its parent
# directories is listed), which builds one store path out of files from several directories.
#
# Five roots, each a derivation built by a static busybox that records its members (so every member
# is a runtime reference and lands in the closure) and holds a stand-in `kernel` and `init`:
#   full    — every member plus the small `etc` path (variant a): the closure of the cold runs;
#   changed — the same members plus `etc` variant b: differs from `full` in `etc` and the root only,
#             like a configuration change that touches a few files;
#   small   — the members marked `small` plus `etc` (variant a): the closure xz is measured on;
#   bigpath — the `bigpath` members plus `etc` (a): one path holding a file of 150 MB or more and a
#             tree of small files, about half the closure's bytes, among many small paths;
#   huge    — every member of `full` plus the `huge` members (one path of about 1 GB of large files):
#             the closure of the peak-RSS run.
{ manifest
, busybox ? (if builtins.pathExists "/usr/bin/busybox" then "/usr/bin/busybox" else "/bin/busybox")
}:

let
  system = builtins.currentSystem;
  manifestSets = builtins.fromJSON (builtins.readFile manifest);
  entries = manifestSets.members;

  # Busybox picks its applet from the name it runs under: import the directory holding it, keeping
  # busybox alone, so the builder is `…/busybox` and not a flat `HASH-busybox`.
  bootstrap = builtins.path {
    name = "nns-bench-busybox";
    path = dirOf busybox;
    filter = path: type: baseNameOf path == baseNameOf busybox;
  };

  import1 = entry:
    let
      root = /. + entry.path;
      # The filter sees absolute paths: "//usr" below "/", "/opt/x/bin" below "/opt/x".
      prefix = toString root + "/";
      keep = builtins.listToAttrs (map (rel: { name = rel; value = true; }) entry.keep);
      relative = path: builtins.substring (builtins.stringLength prefix) (-1) path;
    in
    builtins.path ({
      name = entry.name;
      path = root;
    } // (if (entry.keep or null) != null then {
      filter = path: type: keep ? ${relative path};
    } else if entry.only == null then { } else {
      # Only top-level names listed; nothing below a kept name is filtered (the kept names are files).
      filter = path: type: builtins.elem (baseNameOf path) entry.only;
    }));

  members = map import1 entries;
  smallMembers = map import1 (builtins.filter (entry: entry.small) entries);

  build = name: script: attrs: derivation ({
    inherit name system;
    builder = "${bootstrap}/busybox";
    args = [ "sh" "-e" "-c" script ];
  } // attrs);

  # The one small path that changes between the two configurations.
  etc = variant: build "nns-bench-etc" ''
    bb=${bootstrap}/busybox
    $bb mkdir -p $out/etc/ssh
    $bb echo "nns-bench-${variant}" > $out/etc/hostname
    $bb echo "PermitRootLogin no # ${variant}" > $out/etc/ssh/sshd_config
    $bb ln -s hostname $out/etc/hostname.link
  '' { };

  # A root referencing `paths`; the list goes through a file (passAsFile), not the environment, so
  # its length is not bounded by the kernel's per-string argument limit.
  root = name: etcPath: paths: build name ''
    bb=${bootstrap}/busybox
    $bb mkdir $out
    $bb cp "$membersPath" $out/members
    $bb ln -s ${etcPath}/etc $out/etc
    $bb echo ${name} > $out/name
    # NixOS-shaped (a stand-in kernel and init): the server serves initrds of systems only.
    $bb echo "stand-in kernel" > $out/kernel
    $bb echo "#!/bin/sh" > $out/init
  '' {
    members = builtins.concatStringsSep "\n" (map toString paths) + "\n";
    passAsFile = [ "members" ];
  };
in
{
  full = root "nns-bench-system" (etc "a") members;
  changed = root "nns-bench-system" (etc "b") members;
  small = root "nns-bench-small" (etc "a") smallMembers;
  bigpath = root "nns-bench-bigpath" (etc "a") (map import1 manifestSets.bigpath);
  huge = root "nns-bench-huge" (etc "a") (members ++ map import1 manifestSets.huge);
}

# The benchmark closures, made of real files of this machine.
#
#   nix-build bench/closure.nix --argstr manifest MANIFEST.json -A full -A changed -A small
#
# MANIFEST.json is written by bench/bench.py (`select_members`): a list of members, each
#   { "name": "doc-zstd", "path": "/usr/share/doc/zstd", "only": null | ["libz.so.1.2.13", …], "small": bool }
# A member is imported as it is on disk with builtins.path; with `only`, the member is the directory
# `path` filtered down to those top-level names (a library file and the symlinks that point to it),
# which gives a directory-shaped store path like a package's `lib/`.
#
# Three roots, each a derivation built by a static busybox that records its members (so every member
# is a runtime reference and lands in the closure) and holds a stand-in `kernel` and `init`:
#   full    — every member plus the small `etc` path (variant a): the closure of the cold runs;
#   changed — the same members plus `etc` variant b: differs from `full` in `etc` and the root only,
#             like a configuration change that touches a few files;
#   small   — the members marked `small` plus `etc` (variant a): the closure xz is measured on.
{ manifest
, busybox ? (if builtins.pathExists "/usr/bin/busybox" then "/usr/bin/busybox" else "/bin/busybox")
}:

let
  system = builtins.currentSystem;
  entries = builtins.fromJSON (builtins.readFile manifest);

  # Busybox picks its applet from the name it runs under: import the directory holding it, keeping
  # busybox alone, so the builder is `…/busybox` and not a flat `HASH-busybox`.
  bootstrap = builtins.path {
    name = "nns-bench-busybox";
    path = dirOf busybox;
    filter = path: type: baseNameOf path == baseNameOf busybox;
  };

  import1 = entry: builtins.path ({
    name = entry.name;
    path = /. + entry.path;
  } // (if entry.only == null then { } else {
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
}

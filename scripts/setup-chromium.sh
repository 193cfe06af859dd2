#!/usr/bin/env bash
# Install Debian's Chromium for the headless browser test of the `anekit analyze --html`
# report (crates/anekit-plan/tests/html.rs). Idempotent: does nothing when
# /usr/bin/chromium (or $ANEKIT_CHROMIUM) already runs.
#
#   scripts/setup-chromium.sh
#
# Needs apt-get (Debian/Ubuntu) and root or sudo. Prints the browser's path on success.
set -euo pipefail

browser="${ANEKIT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ] && "$browser" --version >/dev/null 2>&1; then
    echo "$browser"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-chromium: apt-get not found; install Chromium and set ANEKIT_CHROMIUM" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium >&2
"$browser" --version >&2
echo "$browser"

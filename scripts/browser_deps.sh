#!/usr/bin/env bash
# Debian's Chromium and a CJK font for the Playwright browser test (never `playwright install`: it downloads a browser).
set -euo pipefail
if [ -x /usr/lib/chromium/chromium ] && fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "not root or no apt-get: install chromium and fonts-wqy-microhei yourself to run the browser tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null

#!/usr/bin/env bash
# System packages the suite needs: ffmpeg (ffprobe reads our MP4s back in the tests), Debian's
# chromium (the studio's browser test drives /usr/bin/chromium through Playwright) and the Inter
# font (the studio's first choice; the screenshot artifact looks as designed).
# Installed with apt-get when missing; says so loudly when it cannot.
set -euo pipefail
missing=()
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v fc-list >/dev/null 2>&1 && fc-list 2>/dev/null | grep "/inter/" >/dev/null; } || missing+=(fonts-inter)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "system-deps: ERROR: could not install ${missing[*]} (need root or sudo); the MP4 and browser tests will fail" >&2
  exit 1
fi

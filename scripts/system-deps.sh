#!/usr/bin/env bash
# System packages the suite needs: ffmpeg (ffprobe reads our MP4s back in the tests).
# Installed with apt-get when missing; says so loudly when it cannot.
set -euo pipefail
missing=()
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "system-deps: ERROR: could not install ${missing[*]} (need root or sudo); the MP4 tests will fail" >&2
  exit 1
fi

#!/bin/sh
# Installs Debian's Chromium and ChromeDriver for the end-to-end browser test, once.
# Test tools that download their own browser do not work offline; these come from the Debian archive.
set -e
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver

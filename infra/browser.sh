#!/usr/bin/env bash
# Headless Chromium for the admin's browser tests: Debian's chromium + chromium-driver.
# Idempotent: exits 0 at once when /usr/bin/chromium runs; otherwise installs it (root only).
# Playwright drives this binary (executable_path); `playwright install` is never used.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM=${CM_CHROMIUM:-/usr/bin/chromium}

chromium_works() { "$CHROMIUM" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; }

if [ -x "$CHROMIUM" ] && chromium_works; then
    log "$("$CHROMIUM" --version 2>/dev/null) already installed"
    exit 0
fi
apt_install chromium chromium-driver
chromium_works || die "$CHROMIUM was installed but does not run"
log "$("$CHROMIUM" --version 2>/dev/null) installed"

#!/usr/bin/env bash
# Installs the programs the test suites start privately (they never use a system service):
# redis-server, PostgreSQL server binaries, and Chromium for the browser test.
# Debian packages; needs root (as on CI). Does nothing when everything is present.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-services: missing ${missing[*]}; run as root or install them" >&2
    exit 0  # the test fixtures report what is missing (and fail under CI=true)
fi
echo "install-test-services: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A Debian postgresql package starts a system cluster; the tests start their own.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    service postgresql stop >/dev/null 2>&1 || true
fi

#!/usr/bin/env bash
# Make sure a fresh Debian machine can build .venv (python3-venv) and, for `make test`,
# has the real TLS peers the tests talk to (openssl, curl). Installs Debian packages only
# when run as root with apt-get; otherwise says what to run.
#   scripts/bootstrap.sh        what `make demo` needs
#   scripts/bootstrap.sh test   what `make test` needs
set -euo pipefail
PYTHON=${PYTHON:-python3}
need=()
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "${1:-}" = test ]; then
  command -v openssl >/dev/null || need+=(openssl)
  command -v curl >/dev/null || need+=(curl)
  # ss reads a listening socket's accept queue (the gateway's listen backlog test)
  command -v ss >/dev/null || need+=(iproute2)
  # pebble (Let's Encrypt's ACME test server, with pebble-challtestsrv) for tests/acme
  { command -v pebble && command -v pebble-challtestsrv; } >/dev/null || need+=(pebble)
  # nghttp (nghttp2's client, which can present a client certificate) for the HTTP/2 tests
  command -v nghttp >/dev/null || need+=(nghttp2-client)
  # a real PostgreSQL server (initdb, pg_ctl, postgres; Debian keeps them off PATH) for the
  # CA database tests in tests/pki, which start their own throwaway server
  { command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl; } >/dev/null 2>&1 \
    || need+=(postgresql)
  # headless Chromium and NSS's certutil/pk12util for the browser tests in tests/browser
  command -v chromium >/dev/null || need+=(chromium)
  { command -v certutil && command -v pk12util; } >/dev/null || need+=(libnss3-tools)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "error: missing ${need[*]}" >&2
    echo "hint: sudo apt-get install -y ${need[*]}" >&2
    exit 2
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

#!/usr/bin/env bash
# Installs what the end-to-end tests need on a fresh machine, and fails
# loudly when something cannot be had. Idempotent: does nothing when all is
# there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: installing ${need_apt[*]} with apt-get"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian ships dnsmasq with a service that may start on install; the tests
# start their own on 127.0.0.1:5353 and never use the system one.

if [ ! -d test/node/node_modules/@grpc/grpc-js ] || [ test/node/package-lock.json -nt test/node/node_modules/.package-lock.json ]; then
  echo "test-deps: npm ci in test/node"
  (cd test/node && npm ci --no-audit --no-fund --loglevel=error)
fi
# Go tools the tests build (pinned; fetched from the module proxy once).
go mod download github.com/grpc-ecosystem/grpc-health-probe@v0.4.61 github.com/summerwind/h2spec@v2.2.1+incompatible

echo "test-deps: dnsmasq $(/usr/sbin/dnsmasq --version | head -1 | awk '{print $3}'), haproxy $(/usr/sbin/haproxy -v | head -1 | awk '{print $3}'), node $(node --version), grpc-js $(node -p "require('./test/node/node_modules/@grpc/grpc-js/package.json').version")"

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
# C-core 1.51 for the system python3 (test/python), and grpc-java 1.41 with
# Netty (test/java, compiled by the tests with javac). libgrpc-java does not
# depend on Guava, which grpc-java needs at run time: libguava-java is
# named (it brings liberror-prone-java, error_prone_annotations.jar). The
# jars checked are those of javaJars in bench/cluster/external.go.
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need_apt+=(python3-grpcio)
for j in grpc-api grpc-core grpc-context grpc-netty perfmark-api guava gson error_prone_annotations \
  netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks netty-common netty-handler \
  netty-handler-proxy netty-resolver netty-transport; do
  [ -f /usr/share/java/$j.jar ] || { need_apt+=(libgrpc-java libnetty-java libperfmark-java libgoogle-gson-java libguava-java liberror-prone-java); break; }
done
command -v javac >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
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

echo "test-deps: dnsmasq $(/usr/sbin/dnsmasq --version | head -1 | awk '{print $3}'), haproxy $(/usr/sbin/haproxy -v | head -1 | awk '{print $3}'), node $(node --version), grpc-js $(node -p "require('./test/node/node_modules/@grpc/grpc-js/package.json').version"), python grpcio $(/usr/bin/python3 -c 'import grpc; print(grpc.__version__)'), grpc-java $(ls /usr/share/java/grpc-core-*.jar | sed 's/.*grpc-core-//; s/.jar//'), $(javac -version 2>&1)"

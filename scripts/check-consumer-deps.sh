#!/usr/bin/env bash
# check-consumer-deps.sh: a fresh module that imports only
# github.com/grpcmgmt/grpcmgmt (a replace directive points it at this
# checkout) must not see the examples' or the benchmarks' dependencies in
# its module graph (issue 14): `go list -m all` lists none of FORBIDDEN.
# Nor does a Linux binary link gopsutil. Run by `make test` (make check-deps). Uses the module cache and GOPROXY
# as configured; with a warm cache (the library built) it needs no network.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
go="${GO:-go}"
# Modules that only examples/, bench/ or tests of ours may need.
FORBIDDEN='prometheus|go-kratos/aegis|miekg/dns|go.uber.org/goleak|failsafe-go|shirou/gopsutil/v3'

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
gover="$(sed -n 's/^go //p' "$root/go.mod")"
cat >"$dir/go.mod" <<MOD
module example.com/consumer

go $gover

require github.com/grpcmgmt/grpcmgmt v0.0.0

replace github.com/grpcmgmt/grpcmgmt => $root
MOD
cp "$root/go.sum" "$dir/go.sum"
cat >"$dir/main.go" <<'GO'
package main

import (
	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt"
)

func main() { _ = grpc.NewServer(grpcmgmt.ServerOptions()...) }
GO
cd "$dir"
GOFLAGS=-mod=mod "$go" mod tidy
"$go" build -o /dev/null .
mods="$("$go" list -m all)"
if bad="$(grep -E "$FORBIDDEN" <<<"$mods")"; then
	echo "check-consumer-deps: a module importing only the library has in its module graph:" >&2
	echo "$bad" >&2
	echo "(move what needs them to examples/ or bench/, which have their own go.mod)" >&2
	exit 1
fi
# On Linux the library reads host memory from /proc/meminfo and process CPU
# time with getrusage: a Linux binary links no gopsutil (other platforms do).
if linked="$(GOOS=linux "$go" list -deps . | grep gopsutil)"; then
	echo "check-consumer-deps: a Linux binary importing only the library links:" >&2
	echo "$linked" >&2
	exit 1
fi
echo "check-consumer-deps: ok, $(wc -l <<<"$mods") modules in a consumer's graph, none of: ${FORBIDDEN//|/, }; no gopsutil in a Linux binary"

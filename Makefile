# grpcmgmt: make test is what CI runs (.ci/run). See README.md.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: test test-deps test-grpc-oldest check-deps vet lint demo bench report scenarios simulate

## GRPC_OLDEST: the oldest grpc-go release the library supports (README, "Versions and
## stability"): the lowest its packages build with and pass their tests against. go.mod
## holds the newest.
GRPC_OLDEST ?= v1.72.0
## LIB_PKGS: the library's packages.
LIB_PKGS = . ./clientconfig ./goaway/... ./health ./load ./loadshed ./maxage ./orca ./internal/...
## MODULES: the Go modules next to the library's, each with its own go.mod so that the
## library's lists only what the library imports (issue 14): examples/ and bench/ use the
## library in this checkout (a replace directive), deploy/ does not import it.
## make test runs the first two with the library's tests (TEST_WORK), deploy/ after.
MODULES = examples bench deploy
OLDEST_MOD = $(CURDIR)/bin/grpc-oldest/go.mod
## TEST_WORK: a workspace of the library, examples/ and bench/ for make test only, so that one
## go test schedules all their packages together (as when they were one module: bench/cluster's
## two minutes overlap the library's tests) instead of one module after the other. Not
## committed: everything else builds each module with its own go.mod (vet, check-deps, and
## test-grpc-oldest test the library with its own).
TEST_WORK = $(CURDIR)/bin/test.work

## test: install e2e dependencies, vet every module, check that the library's module graph
## stays free of the examples' and benchmarks' dependencies, run every test of every module
## with the race detector (the library, examples/ and bench/ in one go test, then deploy/),
## the allocation budgets once without it (the race detector allocates on its own account,
## so those tests skip under -race), then the library's tests against the oldest supported
## grpc-go
test: test-deps vet check-deps $(TEST_WORK)
	GOWORK=$(TEST_WORK) $(GO) test -race -count=1 -timeout 9m ./... ./examples/... ./bench/...
	$(GO) test -count=1 -run 'Alloc' ./...
	cd deploy && $(GO) test -race -count=1 -timeout 5m ./...
	$(MAKE) test-grpc-oldest

$(TEST_WORK): Makefile
	mkdir -p $(dir $@)
	printf 'go 1.26.0\n\nuse (\n\t..\n\t../examples\n\t../bench\n)\n' > $@

## test-grpc-oldest: vet and test the library's packages against grpc-go $(GRPC_OLDEST), with
## a go.mod generated from ours (bin/grpc-oldest; go get downgrades what needs a newer
## grpc-go). Without -race, to keep make test within its time budget; GOFLAGS, not a
## -modfile flag, so that binaries the tests build use it too.
test-grpc-oldest:
	mkdir -p $(dir $(OLDEST_MOD))
	cp go.mod $(OLDEST_MOD)
	cp go.sum $(OLDEST_MOD:.mod=.sum)
	$(GO) get -modfile=$(OLDEST_MOD) google.golang.org/grpc@$(GRPC_OLDEST)
	@got=$$($(GO) list -modfile=$(OLDEST_MOD) -m -f '{{.Version}}' google.golang.org/grpc); \
	if [ "$$got" != "$(GRPC_OLDEST)" ]; then echo "bin/grpc-oldest pins grpc-go $$got, want $(GRPC_OLDEST)"; exit 1; fi
	GOFLAGS=-modfile=$(OLDEST_MOD) $(GO) vet $(LIB_PKGS)
	GOFLAGS=-modfile=$(OLDEST_MOD) $(GO) test -count=1 -timeout 6m $(LIB_PKGS)

## test-deps: install dnsmasq, haproxy (apt-get) and @grpc/grpc-js (npm ci) when missing
test-deps:
	./scripts/test-deps.sh

## check-deps: a fresh module importing only the library lists no prometheus, aegis,
## miekg/dns, goleak, failsafe-go or gopsutil v3 in `go list -m all`, and its Linux build links no gopsutil
check-deps:
	GO=$(GO) ./scripts/check-consumer-deps.sh

vet:
	$(GO) vet ./...
	for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## lint: go vet plus staticcheck at a pinned version
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	for m in $(MODULES); do (cd $$m && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...) || exit 1; done

## bench: micro-benchmarks and the overhead comparison; merges into bench/out/results.json
## (the bench module's commands run in bench/: their relative paths start there)
bench:
	$(GO) -C bench run ./cmd/bench

## report: add bench/out/results.json to docs/benchmarks.md as its newest run (the page's
## earlier runs are read back from the page itself; bench/cmd/report)
report:
	$(GO) -C bench run ./cmd/report -base ../docs/benchmarks.md -in out/results.json

## simulate: the fleet simulation of the rebalancing and load-policy decisions (n = 10, 100, 1000 replicas; bench/sim)
simulate:
	$(GO) -C bench run ./cmd/simulate

## scenarios: the one-machine cluster scenarios (SCENARIOS=a,b for a subset)
SCENARIOS ?=
scenarios: test-deps
	$(GO) -C bench run ./cmd/scenarios -scenarios "$(SCENARIOS)"

## demo: three in-process replicas, in-process DNS and a standard client; scale-out and a hot replica (about a minute)
demo:
	$(GO) -C examples run ./demo

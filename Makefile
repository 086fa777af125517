# grpcmgmt: make test is what CI runs (.ci/run). See README.md.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: test test-deps test-grpc-oldest vet lint demo bench scenarios simulate

## GRPC_OLDEST: the oldest grpc-go release the library supports (README, "Versions and
## stability"): the lowest its packages build with and pass their tests against. go.mod
## holds the newest.
GRPC_OLDEST ?= v1.72.0
## LIB_PKGS: the library's packages (not examples/ and bench/, which follow go.mod).
LIB_PKGS = . ./clientconfig ./goaway/... ./health ./load ./loadshed ./maxage ./orca ./internal/...
OLDEST_MOD = $(CURDIR)/bin/grpc-oldest/go.mod

## test: install e2e dependencies, vet, and run every test with the race detector
## (the library and examples, then the Kubernetes manifests' own module in deploy/),
## the allocation budgets once without it (the race detector allocates on its own
## account, so those tests skip under -race), then the library's tests against the
## oldest supported grpc-go
test: test-deps vet
	$(GO) test -race -count=1 -timeout 9m ./...
	$(GO) test -count=1 -run 'Alloc' ./...
	cd deploy && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	$(MAKE) test-grpc-oldest

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

vet:
	$(GO) vet ./...

## lint: go vet plus staticcheck at a pinned version
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd deploy && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: micro-benchmarks and the overhead comparison; merges into bench/out/results.json
bench:
	$(GO) run ./bench/cmd/bench

## simulate: the fleet simulation of the rebalancing and load-policy decisions (n = 10, 100, 1000 replicas; bench/sim)
simulate:
	$(GO) run ./bench/cmd/simulate

## scenarios: the one-machine cluster scenarios (SCENARIOS=a,b for a subset)
SCENARIOS ?=
scenarios: test-deps
	$(GO) run ./bench/cmd/scenarios -scenarios "$(SCENARIOS)"

## demo: three in-process replicas, in-process DNS and a standard client; scale-out and a hot replica (about a minute)
demo:
	$(GO) run ./examples/demo

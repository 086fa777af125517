# grpcmgmt: make test is what CI runs (.ci/run). See README.md.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: test test-deps vet lint demo bench scenarios simulate

## test: install e2e dependencies, vet, and run every test with the race detector
## (the library and examples, then the Kubernetes manifests' own module in deploy/)
test: test-deps vet
	$(GO) test -race -count=1 -timeout 9m ./...
	cd deploy && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

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

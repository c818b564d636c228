# The two commands of the README:
#   make quickstart   install what is needed, build expc, train the Fashion-MNIST MLP
#   make test         install what the tests need and run the whole suite
GO ?= go

.PHONY: quickstart test expc deps test-deps bench

expc:
	$(GO) build -o expc ./cmd/expc

deps:
	./scripts/install-deps.sh

test-deps:
	./scripts/install-deps.sh graphviz clang-14 clang-16

quickstart: deps expc
	./expc build specs/fmnist/mlp.cue && ./expc run

test: test-deps
	$(GO) vet ./...
	$(GO) test ./...

# expc's CPU backend against PyTorch, OpenBLAS and gorgonia (bench/README.md).
bench:
	./bench/run.sh $(BENCH_FLAGS)

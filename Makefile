# netraid — run `make` for the list of targets.
GO      ?= go
# Where 'make install' puts things, under DESTDIR if given.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR  ?= /etc
BIN     ?= bin/netraid
PKGS    := ./...
# Packages with unit tests that run quickly under the race detector.
UNIT    := ./internal/... ./blockdev/... ./stripe/... ./meta/... ./volume/... ./mirror/... ./resync/... ./nbd/... ./pki/... ./node/... ./cmd/...
# What --version, status and the log's first line say: git's view of
# the tree, injected because a build may not be stamped by the go command.
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED ?= $(shell test -z "$$(git status --porcelain --untracked-files=no 2>/dev/null)" || echo true)
VPKG    := github.com/netraid/netraid/internal/version
LDFLAGS := -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT) -X $(VPKG).modified=$(MODIFIED)
FUZZTIME ?= 100000x
TRIALS  ?= 0
EXPLORE ?= 10m

.PHONY: help build docs install test unit e2e fuzz demo bench trials explore cover lint deps clean

help: ## list the targets
	@echo "netraid — targets (make TARGET):"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-10s %s\n", $$1, $$2}'
	@echo "Variables: GO=$(GO) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) FUZZTIME=$(FUZZTIME) TRIALS=$(TRIALS)"

build: ## build bin/netraid
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/netraid

docs: build ## manual pages (bin/man/man8) and bash completion (bin/netraid.bash), from the CLI's help
	rm -rf bin/man
	$(BIN) _man bin/man/man8
	$(BIN) completion bash > bin/netraid.bash

install: docs ## install netraid, netraid.service, manual pages, bash completion, an example config, the promoter's netraid-mount and ActiveMQ unit (PREFIX, DESTDIR)
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/netraid
	install -d $(DESTDIR)$(MANDIR)/man8
	install -m 0644 bin/man/man8/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -D -m 0644 bin/netraid.bash $(DESTDIR)$(BASHCOMPDIR)/netraid
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/netraid.service.in > bin/netraid.service
	install -D -m 0644 bin/netraid.service $(DESTDIR)$(UNITDIR)/netraid.service
	install -D -m 0644 dist/netraid.toml $(DESTDIR)$(SYSCONFDIR)/netraid/netraid.toml.example
	install -D -m 0755 dist/promoter/netraid-mount $(DESTDIR)$(BINDIR)/netraid-mount
	install -D -m 0644 dist/promoter/netraid-activemq.service $(DESTDIR)$(UNITDIR)/netraid-activemq.service
	@echo "installed; next: $(SYSCONFDIR)/netraid/netraid.toml (from the .example), then 'systemctl daemon-reload; systemctl enable --now netraid'"

deps: ## install the Debian packages the tests and demo use (when missing)
	./scripts/deps.sh --broker

test: deps build ## everything: unit tests (race), fuzz smoke, end-to-end on loop devices, FUSE, netns
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(UNIT)
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory e2e

unit: ## unit tests only, with the race detector (the node explorer runs for about a minute)
	$(GO) test -race -count=1 -timeout 20m $(UNIT)

explore: ## a long randomized exploration of the node's failure schedules (EXPLORE=10m)
	$(GO) test -count=1 -timeout 0 -run 'TestExplore$$' -v ./node -explore $(EXPLORE)

cover: ## statement coverage of node/ and repl/ by their tests and a one-minute exploration
	$(GO) test -count=1 -coverpkg=./node,./repl -coverprofile=cover.out ./node ./repl >/dev/null
	./scripts/cover.sh cover.out node repl

e2e: build ## end-to-end tests (root: loop devices, nbdfuse, ext4, network namespaces)
	NETRAID_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 25m -v ./tests/... 2>&1 | scripts/testsummary.sh

fuzz: ## a short run of every fuzz target (FUZZTIME each)
	./scripts/fuzz.sh $(FUZZTIME)

demo: deps build ## the story: a broker on a mirrored volume loses a disk, then a machine; nothing lost
	NETRAID_BIN=$(CURDIR)/$(BIN) ./scripts/demo.sh

trials: deps build ## randomized fault trials, with and without a witness (TRIALS=N; default 0: one of each fault)
	NETRAID_BIN=$(CURDIR)/$(BIN) ./scripts/trials.sh $(TRIALS)

bench: deps build ## fio and two syncing stores (ActiveMQ, Redis) on netraid, nbdkit, qemu-nbd and raw; failover time; prints ratios
	$(GO) build -o bin/storeload ./tests/broker/cmd/storeload
	$(GO) build -o bin/failovertime ./tests/promoter/cmd/failovertime
	./scripts/bench.sh

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean: ## remove build output
	rm -rf bin

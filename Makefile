# Every target works on a fresh machine with npm: Deno, ffmpeg and ffprobe are bootstrapped
# into .tools/ (git-ignored) when they are not already on PATH.

DENO_VERSION := 2.9.6
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(PATH)
DENO := $(TOOLS)/bin/deno
PERMS := --allow-net --allow-read --allow-write --allow-env --allow-sys --allow-run
CONFIG ?= config.yaml

.PHONY: run dev test check build tools clean bench

run: tools
	$(DENO) run $(PERMS) main.ts --config $(CONFIG)

dev: tools
	$(DENO) run --watch $(PERMS) main.ts --config $(CONFIG)

test: tools
	bash tests/run.sh

check: tools
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts src/ tests/

# Needs Deno's download host for the denort runtime, or DENORT_BIN=/path/to/denort offline.
build: tools
	DENO_NO_PACKAGE_JSON=1 $(DENO) compile $(PERMS) --node-modules-dir=none --include src/admin/static -o dist/streamcluster main.ts

bench: tools
	bash bench/run.sh

tools: $(TOOLS)/.installed

# One npm call for all three: separate --no-save installs into one prefix prune each other.
$(TOOLS)/.installed:
	mkdir -p $(TOOLS)/bin
	cd $(TOOLS) && npm install --no-save --no-package-lock --no-audit --no-fund --prefix . \
	  @deno/linux-x64-glibc@$(DENO_VERSION) @ffmpeg-installer/linux-x64@4.1.0 @ffprobe-installer/linux-x64@5.2.0
	chmod +x $(TOOLS)/node_modules/@ffmpeg-installer/linux-x64/ffmpeg $(TOOLS)/node_modules/@ffprobe-installer/linux-x64/ffprobe
	ln -sf ../node_modules/@deno/linux-x64-glibc/deno $(TOOLS)/bin/deno
	ln -sf ../node_modules/@ffmpeg-installer/linux-x64/ffmpeg $(TOOLS)/bin/ffmpeg
	ln -sf ../node_modules/@ffprobe-installer/linux-x64/ffprobe $(TOOLS)/bin/ffprobe
	$(TOOLS)/bin/deno --version
	touch $@

clean:
	rm -rf $(TOOLS) dist test-artifacts

# The two commands of README.md: `make run` and `make test`.
# Both install the Debian packages shardlock links against, if missing.

APT_PACKAGES := librocksdb-dev libclang-dev
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: deps run test bench

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The main job. Until the server lands this is the lock core's benchmark.
run: deps bench

bench: deps
	cargo bench --bench apply

test: deps
	cargo test --locked

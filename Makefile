# The two commands of README.md: `make run` and `make test`.
# Both install the Debian packages shardlock links against, if missing.

APT_PACKAGES := librocksdb-dev libclang-dev curl
# redis-cli, for the RESP tests.
TEST_APT_PACKAGES := redis-tools
PY_PACKAGES := "grpcio>=1.63" protobuf "redis>=5"
PY_LDLM := py-ldlm==1.1.3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: deps test-deps run test bench cluster loadtest

# Installs whichever of the Debian packages $(1) are missing.
apt_install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

deps:
	@$(call apt_install,$(APT_PACKAGES))

# Real clients for the compatibility tests: ldlm's Python client, redis-py
# and redis-cli.
test-deps: deps
	@$(call apt_install,$(TEST_APT_PACKAGES))
	@python3 -c "import ldlm, grpc, redis" 2>/dev/null || { \
	  python3 -m pip install --quiet $(PY_PACKAGES) && \
	  python3 -m pip install --quiet --no-deps $(PY_LDLM); }

# The main job: a single-node cluster on 127.0.0.1:7001 (data in ./data).
run: deps
	cargo run --release --bin shardlock -- serve

bench: deps
	cargo bench --bench apply

test: test-deps
	cargo test --locked
	@# A build that admits queued acquires (src/faults.rs): the fault harness must catch it.
	cargo test --locked --features chaos-broken --test integration t08_faults

# A 3-node cluster on loopback (ports 7001-7003), then `make loadtest`.
cluster: deps
	cargo build --release --bins
	config/local-cluster.sh start

loadtest: deps
	cargo build --release --bins
	loadtest/run.sh

# mintca — see README.md. `make run` and `make test` set up everything they
# need (packages, a throwaway PostgreSQL cluster, a SoftHSM token) themselves.

CC      ?= cc
SAN     ?= 0
FUZZ    ?= 0
ifeq ($(FUZZ),1)
# libFuzzer targets: clang, every object instrumented, ASan + UBSan.
CC      := clang
BUILD   := build-fuzz
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
            -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
else ifeq ($(SAN),1)
BUILD   := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS :=
endif

PKGS    := openssl libmicrohttpd jansson libpq libp11 gnutls
CPPFLAGS += -Iinclude -D_GNU_SOURCE -DOPENSSL_API_COMPAT=30000
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -pthread $(SANFLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS  += $(PKG_LIBS) -pthread
LDFLAGS += $(SANFLAGS)

CORE_SRC := $(wildcard ca-core/*.c) $(wildcard db/*.c) $(wildcard protocols/*/*.c) \
            server/log.c server/secret.c server/cfg.c server/cfg_profile.c
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
# server/srv_*.c: shared by both programs; http_*.c, mintcad_*.c: the server's; mintctl_*.c: the tool's.
SRV_SHARED  := server/bootstrap.c server/cas.c $(wildcard server/srv_*.c)
MINTCAD_SRC := server/mintcad.c server/http.c server/workpool.c server/tls_peer.c $(wildcard server/http_*.c) \
               $(wildcard server/mintcad_*.c) $(SRV_SHARED)
MINTCTL_SRC := server/mintctl.c $(wildcard server/mintctl_*.c) $(SRV_SHARED)
UNIT_SRC := $(wildcard tests/unit/*.c)

.DELETE_ON_ERROR:

all: $(BUILD)/mintcad $(BUILD)/mintctl

$(BUILD)/%.o: %.c $(wildcard include/mintca/*.h) $(wildcard */*_int.h) $(wildcard */*/*_int.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

# Migrations are compiled into the binaries so a node never runs with a schema
# from another release.
$(BUILD)/gen/migrations.c: $(sort $(wildcard db/migrations/*.sql)) db/embed-migrations.sh
	@mkdir -p $(dir $@)
	sh db/embed-migrations.sh $(sort $(wildcard db/migrations/*.sql)) > $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libmintca.a: $(CORE_OBJ)
	ar rcs $@ $^

$(BUILD)/mintcad: $(MINTCAD_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mintctl: $(MINTCTL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit_tests: $(UNIT_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs check)

$(BUILD)/bench_issue: $(BUILD)/tests/bench/bench_issue.o $(BUILD)/tests/bench/cpu.o $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_crl: $(BUILD)/tests/bench/bench_crl.o $(BUILD)/tests/bench/cpu.o $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# tests/bench's HTTP(S) load generator and the OCSP benchmark's data generator.
$(BUILD)/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lssl -lcrypto -lm -pthread

$(BUILD)/bench_ocspgen: tests/bench/ocsp_gen.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lcrypto

FUZZ_TARGETS := csr est cfg peer basic ocsp
FUZZ_SECONDS ?= 60

$(BUILD)/fuzz_peer: $(BUILD)/tests/fuzz/fuzz_peer.o $(BUILD)/server/tls_peer.o $(BUILD)/server/cas.o $(BUILD)/server/bootstrap.o $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# The server's own objects (not main) as an archive: a target takes what it uses.
$(BUILD)/libmintcad.a: $(patsubst %.c,$(BUILD)/%.o,$(filter-out server/mintcad.c,$(MINTCAD_SRC)))
	ar rcs $@ $^

$(BUILD)/fuzz_basic: $(BUILD)/tests/fuzz/fuzz_basic.o $(BUILD)/libmintcad.a $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libmintca.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Each fuzz target for FUZZ_SECONDS on its seed corpus; a crash fails.
fuzz: deps
	$(MAKE) FUZZ=1 $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Install missing Debian packages (apt-get update first). Idempotent.
deps:
	@sh deploy/install-deps.sh

build-only: all

# Start the server on the embedded default: PostgreSQL cluster, SoftHSM token,
# config and CAs under ./data (created on first run).
run: deps
	$(MAKE) all
	sh deploy/embedded.sh run

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

# A raw TLS client for tests/integration/hostile.sh (slow and malformed requests).
$(BUILD)/slowtls: tests/integration/slowtls.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lssl -lcrypto

# A PKCS#11 module that injects token faults for tests/integration/hsm.sh. Never
# sanitized: mintcad dlopens it through libp11 like any vendor's module.
$(BUILD)/pkcs11-fault.so: tests/pkcs11-fault/fault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -fPIC -shared -fvisibility=hidden \
		$(shell pkg-config --cflags p11-kit-1) -o $@ $< -ldl -pthread

integration: $(BUILD)/mintcad $(BUILD)/mintctl $(BUILD)/slowtls $(BUILD)/pkcs11-fault.so
	MINTCA_BUILD=$(BUILD) sh tests/integration/run.sh
	MINTCA_BUILD=$(BUILD) sh tests/integration/policy.sh
	MINTCA_BUILD=$(BUILD) sh tests/integration/revoke.sh
	MINTCA_BUILD=$(BUILD) sh tests/integration/hostile.sh
	# Under the sanitizers an enrollment costs ~10x: fewer, still with the kills.
	MINTCA_BUILD=$(BUILD) CRASH_TOTAL=$(if $(filter 1,$(SAN)),2000,10000) sh tests/integration/crash.sh
	MINTCA_BUILD=$(BUILD) sh tests/integration/dbdown.sh
	MINTCA_BUILD=$(BUILD) sh tests/integration/hsm.sh

# Every test, in the normal build and then under AddressSanitizer + UBSan.
test: deps
	$(MAKE) unit integration
	$(MAKE) SAN=1 unit integration

bench: deps
	$(MAKE) $(BUILD)/bench_issue $(BUILD)/loadgen $(BUILD)/bench_ocspgen $(BUILD)/bench_crl all
	MINTCA_BUILD=$(BUILD) sh tests/bench/run.sh

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all deps build-only run unit integration test bench fuzz clean

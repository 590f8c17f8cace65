# ngx_worksible_module: build, run and test.
#
#   make            builds build/ngx_worksible_module.so and build/worksible
#   make run        dev stack (PostgreSQL, Redis, nginx on 127.0.0.1:8080)
#   make stop       stops it
#   make test       every test against a private test stack
#   make test-asan  the same with the module built with AddressSanitizer
#   make fuzz       fuzzes the key parsers with libFuzzer for FUZZ_SECONDS
#
# Each target first installs what is missing (util/install-deps.sh, apt).

BUILD   := $(CURDIR)/build
MODULE  := $(BUILD)/ngx_worksible_module.so
CLI     := $(BUILD)/worksible
NGX_SRC := config ngx_worksible_module.c $(wildcard src/*.c src/*.h)

CLI_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Isrc \
              -I/usr/include/postgresql \
              -DWORKSIBLE_MIGRATIONS_DIR='"$(CURDIR)/migrations"'
CLI_LIBS   := -lpq -lsodium -ljansson

ASAN_CC := -g -O1 -fno-omit-frame-pointer -fsanitize=address
ASAN_LD := -fsanitize=address -Wl,-z,nodelete

FUZZ_SECONDS ?= 30

.PHONY: all deps run stop test test-asan asan fuzz clean

all: deps $(MODULE) $(CLI)

deps:
	@util/install-deps.sh

$(MODULE): $(NGX_SRC)
	util/build-module.sh $(BUILD)

CLI_SRC := util/worksible.c src/ngx_worksible_key.c src/ngx_worksible_cidr.c

$(CLI): $(CLI_SRC) src/ngx_worksible_key.h src/ngx_worksible_cidr.h
	@mkdir -p $(BUILD)
	$(CC) $(CLI_CFLAGS) $(CLI_SRC) -o $@ $(CLI_LIBS)

$(BUILD)/key_test: t/unit/key_test.c t/unit/tap.h src/ngx_worksible_key.c \
                   src/ngx_worksible_key.h
	@mkdir -p $(BUILD)
	$(CC) $(CLI_CFLAGS) t/unit/key_test.c src/ngx_worksible_key.c -o $@ \
	    -lsodium

$(BUILD)/cidr_test: t/unit/cidr_test.c t/unit/tap.h \
                    src/ngx_worksible_cidr.c src/ngx_worksible_cidr.h
	@mkdir -p $(BUILD)
	$(CC) $(CLI_CFLAGS) t/unit/cidr_test.c src/ngx_worksible_cidr.c -o $@

$(BUILD)/key_fuzz: t/fuzz/key_fuzz.c src/ngx_worksible_key.c \
                   src/ngx_worksible_key.h src/ngx_worksible_cidr.c
	@mkdir -p $(BUILD)
	clang -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    t/fuzz/key_fuzz.c src/ngx_worksible_key.c src/ngx_worksible_cidr.c \
	    -o $@ -lsodium

fuzz: deps $(BUILD)/key_fuzz
	@mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/key_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=128 \
	    $(BUILD)/fuzz-corpus

asan: deps $(BUILD)/asan/ngx_worksible_module.so

$(BUILD)/asan/ngx_worksible_module.so: $(NGX_SRC)
	util/build-module.sh $(BUILD)/asan "$(ASAN_CC)" "$(ASAN_LD)"

run: all
	util/dev.sh start

stop:
	util/dev.sh stop

test: all $(BUILD)/key_test $(BUILD)/cidr_test
	util/test.sh

test-asan: all $(BUILD)/key_test $(BUILD)/cidr_test asan
	WORKSIBLE_ASAN=1 util/test.sh

clean:
	-util/dev.sh stop
	-util/stack.sh stop test
	rm -rf $(BUILD) t/servroot*

# ngx_worksible_module: build, run and test.
#
#   make            builds build/ngx_worksible_module.so, build/worksible and
#                   the dashboard's files (build/dashboard/, uPlot vendored)
#   make run        dev stack (PostgreSQL, Redis, nginx on 127.0.0.1:8080)
#   make stop       stops it
#   make test       every test against a private test stack
#   make test-asan  the same with the module built with AddressSanitizer
#                   (leaks included) and UndefinedBehaviorSanitizer; a
#                   report fails the suite (make test-sanitize: the same)
#   make fuzz       every libFuzzer target of t/fuzz/ (FUZZ_TARGETS), each for
#                   FUZZ_SECONDS (300) on its corpus, with ASan and UBSan
#   make fuzz-accepted  after it: a new sample of what the validators
#                   accepted, for t/fuzz_sql.t
#   make chaos      traffic through two nginx while the stores fail
#                   (util/chaos.pl: CHAOS_SECONDS, 180; CHAOS_SHORT=1 runs
#                   one cycle of faults, about a minute, as CI does)
#   make fleet      three nginx in network namespaces sharing a PostgreSQL
#                   primary/replica and a Redis Cluster, while nginx, Redis
#                   and PostgreSQL fail over (util/fleet.sh; root)
#   make capacity   what each kind of request costs Redis and PostgreSQL
#                   (util/capacity.sh; in a network namespace)
#   make deb        the Debian package, in build/
#   make deb-test   installs it with apt-get, tests it, removes it
#   make compat     builds the module for every nginx in NGINX_SOURCES
#   make bench      the benchmark (util/bench.sh; BENCH_SECONDS=60 for the real one)
#
# NGINX_SRC=PATH (an nginx source tree or .tar.gz) builds the module for
# that nginx instead of the system one, in build/nginx-VERSION/ (with
# NGINX_FLAGS, its configure flags, when they are not Debian's); with
# `make test` it also builds that nginx and runs every suite against it.
#
# Each target first installs what is missing (util/install-deps.sh, apt).

NGINX_SRC ?=
NGINX_SOURCES ?= $(wildcard $(CURDIR)/../shared/nginx-src/nginx-*.tar.gz)

BUILD     := $(CURDIR)/build

ifeq ($(NGINX_SRC),)
NGX_BUILD := $(BUILD)
NGINX     := /usr/sbin/nginx
else
NGX_BUILD := $(BUILD)/$(patsubst %.tar.gz,%,$(notdir $(NGINX_SRC:/=)))
NGINX     := $(NGX_BUILD)/objs/nginx
export NGINX_SRC
endif

MODULE    := $(NGX_BUILD)/ngx_worksible_module.so
CLI       := $(BUILD)/worksible

MODULE_SRC := config ngx_worksible_module.c $(wildcard src/*.c src/*.h)

# where the CLI finds the migrations (the package's: /usr/share/worksible)
MIGRATIONS_DIR ?= $(CURDIR)/migrations

CLI_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Isrc \
              -I/usr/include/postgresql \
              -DWORKSIBLE_MIGRATIONS_DIR='"$(MIGRATIONS_DIR)"'
CLI_LIBS   := -lpq -lsodium -ljansson

# the sanitizer build of the module: ASan (leaks included) and UBSan,
# which stops at its first report
ASAN_CC := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fsanitize=float-cast-overflow -fno-sanitize-recover=all
ASAN_LD := -fsanitize=address,undefined -Wl,-z,nodelete

FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= $(patsubst t/fuzz/%_fuzz.c,%,$(wildcard t/fuzz/*_fuzz.c))
FUZZ_NGINX_SRC ?= $(CURDIR)/../shared/nginx-src/nginx-1.30.4.tar.gz
FUZZ      := $(BUILD)/fuzz
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CC   := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_INCS := -Isrc -It/fuzz -I/usr/include/postgresql -I$(FUZZ)/objs \
             $(addprefix -I$(FUZZ)/nginx/src/,core event event/modules \
                                               os/unix http http/modules)
FUZZ_BINS := $(patsubst %,$(FUZZ)/%_fuzz,$(FUZZ_TARGETS))

CHAOS_SECONDS ?= 180
CHAOS_SHORT   ?=

.PHONY: all deps cli dashboard run stop test test-asan test-sanitize asan \
        fuzz fuzz-build fuzz-accepted clean deb deb-test compat chaos fleet capacity bench \
        FORCE

all: deps $(MODULE) $(CLI) dashboard

deps:
	@util/install-deps.sh

# always asked: the build notices new flags, nginx's make the sources
$(MODULE): FORCE
	util/build-module.sh $(NGX_BUILD)

FORCE:

cli: $(CLI)

# the dashboard's static files, with uPlot from dashboard/package-lock.json
# (npm ci by util/install-deps.sh) copied beside them: nothing from a CDN
DASHBOARD_SRC := dashboard/index.html dashboard/dashboard.js \
                 dashboard/dashboard.css dashboard/favicon.svg
UPLOT := dashboard/node_modules/uplot

dashboard: $(BUILD)/dashboard/index.html

$(BUILD)/dashboard/index.html: $(DASHBOARD_SRC) dashboard/package-lock.json
	rm -rf $(BUILD)/dashboard
	mkdir -p $(BUILD)/dashboard/vendor
	cp $(UPLOT)/dist/uPlot.iife.min.js $(UPLOT)/dist/uPlot.min.css \
	    $(BUILD)/dashboard/vendor/
	cp $(UPLOT)/LICENSE $(BUILD)/dashboard/vendor/uPlot.LICENSE
	cp $(DASHBOARD_SRC) $(BUILD)/dashboard/

CLI_SRC := $(wildcard util/worksible*.c) src/ngx_worksible_key.c \
           src/ngx_worksible_cidr.c src/ngx_worksible_time.c

$(CLI): $(CLI_SRC) util/worksible.h src/ngx_worksible_key.h \
        src/ngx_worksible_cidr.h src/ngx_worksible_time.h \
        src/ngx_worksible_version.h
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

# libFuzzer targets (t/fuzz/NAME_fuzz.c), built by clang with ASan and
# UBSan and linked with the module's and nginx's own objects: the nginx of
# FUZZ_NGINX_SRC built by clang with coverage, each pool allocation a
# malloc of its own for ASan (NGX_DEBUG_PALLOC)
$(FUZZ)/libngx.a: $(MODULE_SRC)
	CC=clang NGINX_SRC=$(FUZZ_NGINX_SRC) NGINX_BINARY=1 \
	    NGINX_FLAGS="--without-http_rewrite_module --without-http_gzip_module" \
	    util/build-module.sh $(FUZZ) "$(FUZZ_CC) -fsanitize=fuzzer-no-link \
	    -DNGX_DEBUG_PALLOC=1" "$(FUZZ_SAN)"
	cd $(FUZZ)/objs && objcopy --redefine-sym main=ngx_nginx_main \
	    src/core/nginx.o nginx_nomain.o && rm -f $@ && ar rcs $@ \
	    nginx_nomain.o ngx_modules.o \
	    $$(find src addon -name '*.o' ! -path src/core/nginx.o)

$(FUZZ)/%_fuzz: t/fuzz/%_fuzz.c t/fuzz/fuzz_ngx.c t/fuzz/fuzz_ngx.h \
                $(FUZZ)/libngx.a
	clang $(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_INCS) $< t/fuzz/fuzz_ngx.c \
	    -o $@ $(FUZZ)/libngx.a -lpq -lsodium -ljansson -lhiredis -lcrypt

fuzz-build: deps $(FUZZ_BINS)

fuzz: fuzz-build
	util/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# after a long `make fuzz`: a new sample of what the validators accepted,
# for t/fuzz_sql.t
fuzz-accepted: fuzz-build
	util/fuzz.sh accepted 150 body query

asan: deps $(NGX_BUILD)/asan/ngx_worksible_module.so

$(NGX_BUILD)/asan/ngx_worksible_module.so: $(MODULE_SRC) Makefile
	util/build-module.sh $(NGX_BUILD)/asan "$(ASAN_CC)" "$(ASAN_LD)"

run: all
	util/dev.sh start

stop:
	util/dev.sh stop

ifneq ($(NGINX_SRC),)
$(NGINX): FORCE
	NGINX_BINARY=1 util/build-module.sh $(NGX_BUILD)
endif

test: all $(NGINX) $(BUILD)/key_test $(BUILD)/cidr_test
	WORKSIBLE_NGINX=$(NGINX) WORKSIBLE_MODULE=$(MODULE) util/test.sh

test-asan: all $(BUILD)/key_test $(BUILD)/cidr_test asan
	WORKSIBLE_ASAN=1 util/test.sh

test-sanitize: test-asan

bench: all
	util/bench.sh

compat: deps
	util/compat.sh $(NGINX_SOURCES)

capacity: all
	util/capacity.sh

fleet: all $(NGINX)
	WORKSIBLE_NGINX=$(NGINX) WORKSIBLE_MODULE=$(MODULE) util/fleet.sh run

chaos: all $(NGINX)
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SHORT=$(CHAOS_SHORT) \
	WORKSIBLE_NGINX=$(NGINX) WORKSIBLE_MODULE=$(MODULE) util/chaos.pl

deb: all
	util/deb.sh

deb-test: deb
	util/deb-test.sh

clean:
	-util/dev.sh stop
	-util/stack.sh stop test
	-util/stack.sh stop chaos
	rm -rf $(NGX_BUILD) t/servroot*

# ngx_iothub_twin: build, test, run and measure.
#
#   make run     install what is missing, build, start the gateway in front
#                of the bundled hub emulator
#   make test    install what is missing, build, run every test
#   make bench   the benchmarks (ratios measured side by side in one run)
#   make fuzz    build the fuzzers; make fuzz-run runs them for a while
#   make test-asan  every test again, with the module built with ASan and
#                UBSan and loaded into the distro's nginx
#   make deb     the Debian package, in build/deb; make test-deb installs it,
#                runs it, and purges it again

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

NGX_SRC     ?= /usr/share/nginx/src
NGINX       ?= /usr/sbin/nginx
BUILD       := $(CURDIR)/build
MODDIR      := $(CURDIR)/ngx_iothub_twin_module
MODULE      := $(BUILD)/ngx_http_iothub_twin_module.so
CERTS       := $(BUILD)/certs

# the module with AddressSanitizer and UndefinedBehaviorSanitizer, in its
# own build folder; nginx itself is the distro's, with the runtime
# preloaded by t/lib/nginx-sanitized.  clang, not gcc: gcc 12's UBSan does
# not check the non-null arguments of memcpy and friends.
ASAN_BUILD  := $(BUILD)/asan
ASAN_MODULE := $(ASAN_BUILD)/ngx_http_iothub_twin_module.so
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer
SAN_RUNTIME  = $(shell $(CLANG) -print-file-name=libclang_rt.asan-x86_64.so)

CC          ?= cc
CLANG       ?= clang
UNIT_CFLAGS := -std=gnu99 -O2 -g -Wall -Wextra -Werror -I$(MODDIR)

# the pure parts: no nginx types, callable from tests, fuzzers, benchmarks
PURE_SRCS   := $(MODDIR)/ngx_http_iothub_twin_id.c \
               $(MODDIR)/ngx_http_iothub_twin_sas.c \
               $(MODDIR)/ngx_http_iothub_twin_etag.c \
               $(MODDIR)/ngx_http_iothub_twin_patch.c \
               $(MODDIR)/ngx_http_iothub_twin_policy_load.c \
               $(MODDIR)/ngx_http_iothub_twin_policy_compile.c \
               $(MODDIR)/ngx_http_iothub_twin_policy_match.c \
               $(MODDIR)/ngx_http_iothub_twin_filter.c \
               $(MODDIR)/ngx_http_iothub_twin_route.c
MOD_SRCS    := $(wildcard $(MODDIR)/*.c) $(wildcard $(MODDIR)/*.h) config

UNIT_TESTS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
FUZZERS     := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/fuzz_*.c))
BENCHES     := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

# what the build, the tests and the demo need, as Debian package names
DEB_PACKAGES := nginx nginx-dev libjansson-dev libssl-dev gcc make perl \
                openssl curl python3 clang libclang-rt-14-dev wrk \
                libio-socket-ssl-perl valgrind

.PHONY: all build deps certs unit test run bench fuzz fuzz-run warnings clean \
        module-locked test-asan module-asan-locked deb deb-deps test-deb

all: build

build: $(MODULE)

# installs those of the Debian packages $(1) that are missing
define apt_install
@missing=""; \
for p in $(1); do \
    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null \
        | grep -q "install ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
    echo "installing:$$missing"; \
    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
    $$sudo apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
        -o DPkg::Lock::Timeout=300 --no-install-recommends $$missing; \
fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES))
	@# the official Node SDK for t/sdk.t: Node from Debian when the machine
	@# has none (the machine's own Node 20 is used when it is there)
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	        --no-install-recommends nodejs npm; \
	fi
	@if [ ! -d t/node/node_modules ]; then \
	    npm ci --prefix t/node --no-audit --no-fund --loglevel=error; \
	fi

$(BUILD)/nginx/Makefile: config
	mkdir -p $(BUILD)/nginx
	cd $(NGX_SRC) && source ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/nginx \
	        > $(BUILD)/nginx/configure.log 2>&1 \
	    || { tail -n 30 $(BUILD)/nginx/configure.log; exit 1; }

# one build at a time: two configure runs in one build folder corrupt
# each other's feature tests
$(MODULE): config $(MOD_SRCS)
	mkdir -p $(BUILD)
	flock $(BUILD)/.build.lock $(MAKE) --no-print-directory module-locked

# nginx's own flags (its -Werror among them), with -O2 for -O: the
# validator runs a third faster
module-locked: $(BUILD)/nginx/Makefile
	$(MAKE) -s -f $(BUILD)/nginx/Makefile -C $(NGX_SRC) modules \
	    CFLAGS="$$(sed -n 's/^CFLAGS = //p' $(BUILD)/nginx/Makefile \
	               | sed 's/ -O / -O2 /')"
	cp $(BUILD)/nginx/ngx_http_iothub_twin_module.so $(MODULE)

$(ASAN_BUILD)/nginx/Makefile: config
	mkdir -p $(ASAN_BUILD)/nginx
	cd $(NGX_SRC) && source ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) --builddir=$(ASAN_BUILD)/nginx \
	        > $(ASAN_BUILD)/nginx/configure.log 2>&1 \
	    || { tail -n 30 $(ASAN_BUILD)/nginx/configure.log; exit 1; }

$(ASAN_MODULE): config $(MOD_SRCS)
	mkdir -p $(ASAN_BUILD)
	flock $(BUILD)/.build.lock $(MAKE) --no-print-directory \
	    module-asan-locked

# nginx's own flags (its -Werror among them) and the sanitizers, also at
# link time, against the shared runtime (ASan's, which holds UBSan's too)
# that the wrapper preloads
module-asan-locked: $(ASAN_BUILD)/nginx/Makefile
	$(MAKE) -s -f $(ASAN_BUILD)/nginx/Makefile -C $(NGX_SRC) modules \
	    CC=$(CLANG) \
	    CFLAGS="$$(sed -n 's/^CFLAGS = //p' $(ASAN_BUILD)/nginx/Makefile) \
	            $(SAN_FLAGS)" \
	    LINK='$$(CC) $(SAN_FLAGS) -shared-libsan'
	cp $(ASAN_BUILD)/nginx/ngx_http_iothub_twin_module.so $(ASAN_MODULE)

# Every test with the sanitized module in the distro's nginx.  The harness
# fails a test on any sanitizer report in its folder (t/lib/nginx-sanitized
# points the reports there); reports of an nginx started elsewhere go to
# build/asan/logs, which must stay empty.  The fuzzers are ASan builds
# already: t/02-fuzz.t replays their corpora in this run too.
test-asan: deps $(ASAN_MODULE) certs unit fuzz
	rm -rf $(ASAN_BUILD)/logs
	mkdir -p $(ASAN_BUILD)/logs
	IOTHUB_TWIN_MODULE=$(ASAN_MODULE) \
	NGINX_BIN=$(CURDIR)/t/lib/nginx-sanitized \
	IOTHUB_TWIN_NGINX=$(NGINX) \
	IOTHUB_TWIN_SANITIZER_LIBS=$(SAN_RUNTIME) \
	IOTHUB_TWIN_SANITIZER_DIR=$(ASAN_BUILD)/logs \
	    prove -r $(if $(T),$(T),t/)
	@if [ -n "$$(ls -A $(ASAN_BUILD)/logs)" ]; then \
	    echo "sanitizer reports in $(ASAN_BUILD)/logs:"; \
	    head -n 20 $(ASAN_BUILD)/logs/*; exit 1; \
	fi

# the whole module with every warning gcc has for it, not only nginx's set
warnings: $(BUILD)/nginx/Makefile
	for f in $(wildcard $(MODDIR)/*.c); do \
	    $(CC) -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Werror \
	        -I $(NGX_SRC)/src/core -I $(NGX_SRC)/src/event \
	        -I $(NGX_SRC)/src/event/modules -I $(NGX_SRC)/src/os/unix \
	        -I $(NGX_SRC)/src/http -I $(NGX_SRC)/src/http/modules \
	        -I $(NGX_SRC)/src/http/v2 -I $(BUILD)/nginx -I $(MODDIR) "$$f"; \
	done

$(CERTS)/ca.pem: Makefile
	rm -rf $(CERTS)
	mkdir -p $(CERTS)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -keyout $(CERTS)/ca.key -out $(CERTS)/ca.pem -days 3650 \
	    -subj "/CN=ngx_iothub_twin test CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout $(CERTS)/hub.key -out $(CERTS)/hub.csr \
	    -subj "/CN=testhub.azure-devices.net" 2>/dev/null
	printf 'subjectAltName=DNS:testhub.azure-devices.net,DNS:localhost,IP:127.0.0.1\n' \
	    > $(CERTS)/hub.ext
	openssl x509 -req -in $(CERTS)/hub.csr -CA $(CERTS)/ca.pem \
	    -CAkey $(CERTS)/ca.key -CAcreateserial -days 3650 \
	    -extfile $(CERTS)/hub.ext -out $(CERTS)/hub.pem 2>/dev/null
	@# the second hub of the routing tests: a certificate for its name only
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout $(CERTS)/hub2.key -out $(CERTS)/hub2.csr \
	    -subj "/CN=euhub.azure-devices.net" 2>/dev/null
	printf 'subjectAltName=DNS:euhub.azure-devices.net\n' > $(CERTS)/hub2.ext
	openssl x509 -req -in $(CERTS)/hub2.csr -CA $(CERTS)/ca.pem \
	    -CAkey $(CERTS)/ca.key -CAcreateserial -days 3650 \
	    -extfile $(CERTS)/hub2.ext -out $(CERTS)/hub2.pem 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -keyout $(CERTS)/other-ca.key -out $(CERTS)/other-ca.pem \
	    -days 3650 -subj "/CN=some other CA" 2>/dev/null
	for c in backend-a backend-b; do \
	    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	        -keyout $(CERTS)/$$c.key -out $(CERTS)/$$c.csr \
	        -subj "/O=Example Backends/CN=$$c" 2>/dev/null; \
	    openssl x509 -req -in $(CERTS)/$$c.csr -CA $(CERTS)/ca.pem \
	        -CAkey $(CERTS)/ca.key -CAcreateserial -days 3650 \
	        -out $(CERTS)/$$c.pem 2>/dev/null; \
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout $(CERTS)/intruder.key -out $(CERTS)/intruder.csr \
	    -subj "/CN=backend-a" 2>/dev/null
	openssl x509 -req -in $(CERTS)/intruder.csr -CA $(CERTS)/other-ca.pem \
	    -CAkey $(CERTS)/other-ca.key -CAcreateserial -days 3650 \
	    -out $(CERTS)/intruder.pem 2>/dev/null

certs: $(CERTS)/ca.pem

$(BUILD)/unit/%: t/unit/%.c $(PURE_SRCS)
	mkdir -p $(BUILD)/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) -lcrypto -ljansson

# the scalar build of the validator's tests includes test_patch.c
$(BUILD)/unit/test_patch_scalar: t/unit/test_patch.c

unit: $(UNIT_TESTS)

$(BUILD)/fuzz/%: fuzz/%.c $(PURE_SRCS)
	mkdir -p $(BUILD)/fuzz
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -I$(MODDIR) \
	    -o $@ $< $(PURE_SRCS) -lcrypto -ljansson

fuzz: $(FUZZERS)

fuzz-run: fuzz
	for f in $(FUZZERS); do \
	    n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	    $$f -max_total_time=$${FUZZ_SECONDS:-300} $(BUILD)/fuzz/corpus-$$n \
	        fuzz/corpus/$${n#fuzz_}; \
	done

$(BUILD)/bench/%: bench/%.c bench/bench.h $(PURE_SRCS)
	mkdir -p $(BUILD)/bench
	$(CC) -std=gnu99 -O2 -g -Wall -Wextra -I$(MODDIR) -o $@ $< \
	    $(PURE_SRCS) -lcrypto -ljansson

# the pure parts alone, then the gateway against plain proxy_pass in the
# configuration operators run (about 3 minutes; informs, never fails on a
# figure)
bench: deps build certs $(BENCHES)
	for b in $(BENCHES); do $$b; done
	perl bench/gateway.pl

test: deps build certs unit fuzz
	prove -r t/

run: deps build certs
	./emulator/run-demo.sh

# ---------------------------------------------------------------- Debian

# what "make deb" needs, as Debian package names
DEB_BUILD_DEPS := debhelper dpkg-dev fakeroot lintian nginx-dev \
                  libjansson-dev libssl-dev gcc make
DEB_NAME       := libnginx-mod-http-iothub-twin
DEB_VERSION     = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_DIR        := $(BUILD)/deb

deb-deps:
	$(call apt_install,$(DEB_BUILD_DEPS))

# dpkg-buildpackage writes its results beside the source folder, so the
# source is copied into build/deb first: everything lands in build/deb
deb: deb-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/$(DEB_NAME)-$(DEB_VERSION)
	tar -C $(CURDIR) --exclude=./build --exclude=./.git \
	    --exclude=./t/node/node_modules -cf - . \
	    | tar -C $(DEB_DIR)/$(DEB_NAME)-$(DEB_VERSION) -xf -
	cd $(DEB_DIR)/$(DEB_NAME)-$(DEB_VERSION) \
	    && dpkg-buildpackage -b -us -uc > $(DEB_DIR)/build.log 2>&1 \
	    || { tail -n 40 $(DEB_DIR)/build.log; exit 1; }
	lintian --fail-on error --display-info \
	    $(DEB_DIR)/$(DEB_NAME)_$(DEB_VERSION)_*.changes \
	    | tee $(DEB_DIR)/lintian.log
	@ls -l $(DEB_DIR)/*.deb

# installs the package on this machine, runs nginx from the installed files
# in front of the hub emulator, and purges it (also when a step fails)
test-deb: deb certs
	IOTHUB_TWIN_TEST_DEB=$$(ls $(DEB_DIR)/$(DEB_NAME)_$(DEB_VERSION)_*.deb) \
	    prove -v t/package.t

clean:
	rm -rf $(BUILD)

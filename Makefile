# a2ad - build, run, test, install.  `make help` lists the targets.
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?=
# Where make install puts python/a2ad_agent.py: Debian's python3 searches
# PREFIX/lib/pythonX.Y/dist-packages for PREFIX=/usr/local.
PYTHON  ?= $(firstword $(wildcard /usr/bin/python3) python3)
PYSITE  ?= $(shell $(PYTHON) -c 'import sys; print("lib/python%d.%d/dist-packages" % sys.version_info[:2])' 2>/dev/null || echo lib/a2ad/python)
OPT     ?= -O2

PKGS     := libmicrohttpd libcurl libcjson inih sqlite3 libcrypto libjwt libpq gnutls
WARN     := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wshadow
CFLAGS_A := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -Iinclude -Idaemon $(SAN) $(EXTRA_CFLAGS)
LDFLAGS_A := $(SAN) $(EXTRA_LDFLAGS)

DEPS_OK := $(BUILD)/.deps-ok
DEPS_TEST_OK := $(BUILD)/.deps-test-ok
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

# daemon/ by layer: front/ (HTTP, bindings, streams, admin), core/ (the
# request core, tasks, auth), agents/ (plugins, workers, runners), store/
# (SQLite, PostgreSQL, the cluster), delivery/ (webhooks, push, HU).
DAEMON_SRC  := $(wildcard daemon/*.c daemon/*/*.c)
DAEMON_HDR  := $(wildcard daemon/*.h daemon/*/*.h)
UI_FILES    := $(sort $(wildcard daemon/front/ui/*.html daemon/front/ui/*.css daemon/front/ui/*.js daemon/front/ui/*.svg))
DAEMON_OBJ  := $(DAEMON_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/ui_files.o
LIB_OBJ     := $(filter-out $(BUILD)/obj/daemon/main.o,$(DAEMON_OBJ))
PLUGIN_SRC  := $(wildcard plugins/*.c)
PLUGINS     := $(PLUGIN_SRC:plugins/%.c=$(BUILD)/plugins/%.so)
TPLUGIN_SRC := $(wildcard tests/plugins/*.c)
TPLUGINS    := $(TPLUGIN_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
# Two builds of one plugin (test_live replaces one by the other).
TPLUGINS    += $(BUILD)/tests/plugins/vers_v1.so $(BUILD)/tests/plugins/vers_v2.so
TEST_SRC    := $(wildcard tests/*.c tests/support/*.c)
TEST_OBJ    := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
# The plugin SDK's mock host (include/a2ad/mock.h): plugin unit tests link it.
MOCK_LIB    := $(BUILD)/liba2ad-mock.a
# Man pages from scdoc sources (docs/man/NAME.SECTION.scd); built when
# scdoc is installed.
MAN_SRC     := $(wildcard docs/man/*.scd)
MANS        := $(MAN_SRC:docs/man/%.scd=$(BUILD)/man/%)
SCDOC       := $(shell command -v scdoc 2>/dev/null)
VERSION     := $(shell sed -n 's/^#define A2AD_VERSION "\(.*\)"/\1/p' daemon/main.c)

.PHONY: all run test tour-test interop ui-test asan tsan check-header install uninstall clean deps help bench bench-peer man sdk-test fuzz fuzz-build fuzz-replay
all: $(BUILD)/a2ad $(BUILD)/a2ctl $(BUILD)/a2ad-agent-host $(PLUGINS) $(MOCK_LIB) $(if $(SCDOC),$(MANS))

help:
	@echo "make          build a2ad and the example plugins into $(BUILD)/"
	@echo "make run      build, then run a2ad on 127.0.0.1:8080 with conf/a2ad.conf"
	@echo "make test     build and run the test suite (Check), then the interop test"
	@echo "make interop  the official A2A JS client (@a2a-js/sdk) against a2ad (needs node, npm)"
	@echo "make ui-test  the web dashboard in headless chromium (needs chromium, node, npm)"
	@echo "make asan     the test suite under AddressSanitizer + UBSan (build/asan)"
	@echo "make fuzz     build the libFuzzer harnesses (clang) and run each FUZZ_SECONDS (60)"
	@echo "make tsan     the test suite under ThreadSanitizer (build/tsan)"
	@echo "make install  install to \$$DESTDIR\$$PREFIX (binary, plugins, plugin SDK, man pages, config, unit)"
	@echo "make tour-test run the README's tour against the daemon; check its configuration reference"
	@echo "make sdk-test install to a temporary folder, then build and test examples/out-of-tree from it"
	@echo "make bench    benchmark on loopback (needs wrk, curl; about 1.5 min), see bench/README.md"
	@echo "make bench-peer  the same, plus the A2A JS SDK peer in ../shared/peer (needs node), and ratios"

# Installs missing Debian packages when root; otherwise prints the apt-get line.
# The test tools (Check) have their own stamp: `make run` then `make test`
# must still install them.
$(DEPS_OK): scripts/deps.sh
	@scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@
$(DEPS_TEST_OK): scripts/deps.sh
	@scripts/deps.sh --test
	@mkdir -p $(BUILD) && touch $@
deps:
	@scripts/deps.sh --test

$(BUILD)/obj/daemon/%.o: daemon/%.c $(DAEMON_HDR) include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $(PKG_CFLAGS) -c $< -o $@

# The dashboard's files (daemon/front/ui/) built into the binary.
$(BUILD)/gen/ui_files.c: $(UI_FILES) scripts/embed-ui.sh
	@mkdir -p $(dir $@)
	scripts/embed-ui.sh $@ $(UI_FILES)
$(BUILD)/obj/gen/ui_files.o: $(BUILD)/gen/ui_files.c daemon/front/ui_files.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -c $< -o $@

$(BUILD)/a2ad: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS_A) $^ -o $@ $(PKG_LIBS) -ldl -lpthread -lm

# a2ctl, the command-line client: libcurl and cJSON only.
$(BUILD)/a2ctl: tools/a2ctl/a2ctl.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $(shell pkg-config --cflags libcurl libcjson 2>/dev/null) $< -o $@ \
	  $(LDFLAGS_A) $(shell pkg-config --libs libcurl libcjson 2>/dev/null)

# The child of isolation = process: loads one plugin, speaks docs/agent-protocol.md.
$(BUILD)/a2ad-agent-host: tools/agent_host.c include/a2ad/agent.h | $(DEPS_OK)
	$(CC) $(CFLAGS_A) $(PKG_CFLAGS) $< -o $@ $(LDFLAGS_A) $(PKG_LIBS) -ldl -lpthread -lm

$(BUILD)/plugins/%.so: plugins/%.c include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -fPIC -fvisibility=hidden -shared $< -o $@ $(LDFLAGS_A) -lpthread

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -fPIC -fvisibility=hidden -shared $< -o $@ $(LDFLAGS_A) -lpthread

$(BUILD)/tests/plugins/vers_v%.so: tests/plugins/vers.c include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -DVERS=$* -fPIC -fvisibility=hidden -shared $< -o $@ $(LDFLAGS_A) -lpthread

$(BUILD)/obj/tests/%.o: tests/%.c $(wildcard tests/*.h tests/support/*.h $(DAEMON_HDR)) include/a2ad/agent.h | $(DEPS_TEST_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -Itests $(PKG_CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(BUILD)/tests/a2ad-tests: $(TEST_OBJ) $(LIB_OBJ) $(MOCK_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_A) $^ -o $@ $(PKG_LIBS) $(CHECK_LIBS) -ldl -lpthread -lm

$(BUILD)/obj/sdk/%.o: sdk/%.c include/a2ad/agent.h include/a2ad/mock.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -fPIC -c $< -o $@

$(MOCK_LIB): $(BUILD)/obj/sdk/mock_host.o
	rm -f $@
	$(AR) rcs $@ $^

# Any docs/man/NAME.SECTION.scd becomes $(BUILD)/man/NAME.SECTION.
$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@
man: $(MANS)

run: all
	$(BUILD)/a2ad -c conf/a2ad.conf

# The suite finds the daemon, the plugins and the test plugins under A2AD_BUILD.
test: all $(TPLUGINS) $(BUILD)/tests/a2ad-tests check-header fuzz-replay
	A2AD_BUILD=$(BUILD) $(BUILD)/tests/a2ad-tests
	tests/interop/run.sh $(BUILD)
	tests/ui/run.sh $(BUILD)
	SAN="$(SAN)" tests/sdk.sh $(BUILD)
	tests/readme_tour.sh $(BUILD)

# The README's tour run against the daemon, and its configuration reference
# against `a2ad -t -v` (needs curl, python3).
tour-test: all
	tests/readme_tour.sh $(BUILD)

# The web dashboard (/ui/) in Debian's headless chromium (needs node, npm).
ui-test: all
	tests/ui/run.sh $(BUILD)

# The plugin SDK as a plugin author meets it: installed, then used by an
# out-of-tree build (examples/out-of-tree) through pkg-config.
sdk-test: all
	SAN="$(SAN)" tests/sdk.sh $(BUILD)

# The official A2A JavaScript client (@a2a-js/sdk 0.3 and 1.x) against the daemon.
interop: all
	tests/interop/run.sh $(BUILD)

# Benchmarks: bench/bench.sh starts everything on 127.0.0.1 and prints a
# table; it installs nothing and says what is missing.
BENCH_BIN := $(BUILD)/bench/sink $(BUILD)/bench/startup $(BUILD)/tests/plugins/burst.so
$(BUILD)/bench/sink: bench/sink.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) $< -o $@ \
	  $(LDFLAGS_A) $(shell pkg-config --libs libmicrohttpd 2>/dev/null) -lpthread
$(BUILD)/bench/startup: bench/startup.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $< -o $@ $(LDFLAGS_A)

bench: all $(BENCH_BIN)
	BUILD=$(BUILD) bench/bench.sh

bench-peer: all $(BENCH_BIN)
	BUILD=$(BUILD) bench/bench.sh --peer

asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

tsan:
	$(MAKE) BUILD=build/tsan OPT=-O1 SAN="-fsanitize=thread" test

# libFuzzer harnesses (fuzz/*.c, clang): each links the daemon's modules
# built with the fuzzer's instrumentation. `make fuzz` runs each for
# FUZZ_SECONDS on a copy of its seed corpus (fuzz/corpus/NAME, which new
# inputs do not touch); `make fuzz-replay` (part of `make test`) runs every
# corpus file once, so a crash saved there stays a regression test.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Idaemon $(FUZZ_SAN) $(PKG_CFLAGS)
FUZZERS      := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZERS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB_OBJ := $(patsubst daemon/%.c,$(FUZZ_DIR)/obj/%.o,$(filter-out daemon/main.c,$(DAEMON_SRC))) \
                $(FUZZ_DIR)/obj/gen/ui_files.o
# Kept between runs (they are only prerequisites of the harnesses).
.SECONDARY: $(FUZZ_LIB_OBJ)

$(FUZZ_DIR)/obj/%.o: daemon/%.c $(DAEMON_HDR) include/a2ad/agent.h | $(DEPS_TEST_OK)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/obj/gen/ui_files.o: $(BUILD)/gen/ui_files.c daemon/front/ui_files.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(PKG_LIBS) -ldl -lpthread -lm

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@for f in $(FUZZERS); do \
	  mkdir -p $(FUZZ_DIR)/work/$$f && \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s" && \
	  $(FUZZ_DIR)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -artifact_prefix=$(FUZZ_DIR)/work/$$f- -print_final_stats=1 \
	    $(FUZZ_DIR)/work/$$f fuzz/corpus/$$f || exit 1; \
	done

fuzz-replay: fuzz-build
	@for f in $(FUZZERS); do \
	  $(FUZZ_DIR)/fuzz_$$f -runs=0 fuzz/corpus/$$f 2>$(FUZZ_DIR)/replay-$$f.log || \
	    { tail -40 $(FUZZ_DIR)/replay-$$f.log; echo "fuzz-replay: $$f failed"; exit 1; }; \
	  echo "fuzz-replay: $$f: $$(ls fuzz/corpus/$$f | wc -l) corpus inputs pass"; \
	done

# The public header must compile on its own, strictly.
check-header:
	@$(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c include/a2ad/agent.h
	@$(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c include/a2ad/mock.h
	@echo "include/a2ad/agent.h and mock.h compile standalone (-std=c11 -pedantic)"
	@tests/man_keys.sh

# The installed configuration is conf/production.conf (credentials required,
# no example agents; the examples go to lib/a2ad/examples, not loaded), not
# the open `make run` demo, which is kept as a commented example.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/a2ad/plugins \
	  $(DESTDIR)$(PREFIX)/lib/a2ad/examples $(DESTDIR)$(PREFIX)/share/doc/a2ad \
	  $(DESTDIR)$(PREFIX)/include/a2ad $(DESTDIR)/etc/a2ad $(DESTDIR)$(PREFIX)/lib/systemd/system \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/a2ad $(DESTDIR)$(PREFIX)/bin/a2ad
	install -m 755 $(BUILD)/a2ctl $(DESTDIR)$(PREFIX)/bin/a2ctl
	install -m 755 $(BUILD)/a2ad-agent-host $(DESTDIR)$(PREFIX)/bin/a2ad-agent-host
	install -d $(DESTDIR)$(PREFIX)/$(PYSITE)
	install -m 644 python/a2ad_agent.py $(DESTDIR)$(PREFIX)/$(PYSITE)/a2ad_agent.py
	install -d $(DESTDIR)$(PREFIX)/share/a2ad/examples
	install -m 755 examples/python/demo_agent.py $(DESTDIR)$(PREFIX)/share/a2ad/examples/demo_agent.py
	install -m 644 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/a2ad/examples/
	install -m 644 include/a2ad/agent.h $(DESTDIR)$(PREFIX)/include/a2ad/agent.h
	install -m 644 conf/a2ad.conf $(DESTDIR)$(PREFIX)/share/doc/a2ad/a2ad.conf.example
	install -m 644 include/a2ad/mock.h $(DESTDIR)$(PREFIX)/include/a2ad/mock.h
	install -m 644 $(MOCK_LIB) $(DESTDIR)$(PREFIX)/lib/liba2ad-mock.a
	for pc in a2ad-plugin a2ad-mock; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' sdk/$$pc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc; done
	for m in $(if $(SCDOC),$(MANS)); do \
	  s=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$s; \
	  install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	test -e $(DESTDIR)/etc/a2ad/a2ad.conf || \
	  sed -e 's|^dir = .*|dir = $(PREFIX)/lib/a2ad/plugins|' \
	      -e 's|PREFIX/share|$(PREFIX)/share|' conf/production.conf > $(DESTDIR)/etc/a2ad/a2ad.conf
	test -e $(DESTDIR)/etc/a2ad/tokens || \
	  printf '%s\n' '# a2ad credentials: NAME sha256:HEX [admin] [agents=a,b], one per line.' \
	    '# Make a line with: openssl rand -hex 32 | tee NAME.token | a2ad --hash-token NAME' \
	    > $(DESTDIR)/etc/a2ad/tokens
	sed -e 's|/usr/local|$(PREFIX)|g' systemd/a2ad.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/a2ad.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/a2ad $(DESTDIR)$(PREFIX)/bin/a2ctl $(DESTDIR)$(PREFIX)/bin/a2ad-agent-host $(DESTDIR)$(PREFIX)/include/a2ad/agent.h \
	  $(DESTDIR)$(PREFIX)/include/a2ad/mock.h $(DESTDIR)$(PREFIX)/lib/liba2ad-mock.a \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/a2ad-plugin.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/a2ad-mock.pc \
	  $(MAN_SRC:docs/man/%.scd=$(DESTDIR)$(PREFIX)/share/man/man*/%) \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system/a2ad.service
	rm -rf $(DESTDIR)$(PREFIX)/lib/a2ad $(DESTDIR)$(PREFIX)/share/doc/a2ad $(DESTDIR)$(PREFIX)/share/a2ad
	rm -f $(DESTDIR)$(PREFIX)/$(PYSITE)/a2ad_agent.py

clean:
	rm -rf build

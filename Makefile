# a2ad - build, run, test, install.  `make help` lists the targets.
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?=
OPT     ?= -O2

PKGS     := libmicrohttpd libcurl libcjson inih sqlite3 libcrypto libjwt libpq
WARN     := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wshadow
CFLAGS_A := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -Iinclude -Idaemon $(SAN) $(EXTRA_CFLAGS)
LDFLAGS_A := $(SAN) $(EXTRA_LDFLAGS)

DEPS_OK := $(BUILD)/.deps-ok
DEPS_TEST_OK := $(BUILD)/.deps-test-ok
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

DAEMON_SRC  := $(wildcard daemon/*.c)
UI_FILES    := $(sort $(wildcard daemon/ui/*.html daemon/ui/*.css daemon/ui/*.js daemon/ui/*.svg))
DAEMON_OBJ  := $(DAEMON_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/ui_files.o
LIB_OBJ     := $(filter-out $(BUILD)/obj/daemon/main.o,$(DAEMON_OBJ))
PLUGIN_SRC  := $(wildcard plugins/*.c)
PLUGINS     := $(PLUGIN_SRC:plugins/%.c=$(BUILD)/plugins/%.so)
TPLUGIN_SRC := $(wildcard tests/plugins/*.c)
TPLUGINS    := $(TPLUGIN_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
TEST_SRC    := $(wildcard tests/*.c tests/support/*.c)
TEST_OBJ    := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all run test interop ui-test asan tsan check-header install uninstall clean deps help bench bench-peer
all: $(BUILD)/a2ad $(BUILD)/a2ctl $(PLUGINS)

help:
	@echo "make          build a2ad and the example plugins into $(BUILD)/"
	@echo "make run      build, then run a2ad on 127.0.0.1:8080 with conf/a2ad.conf"
	@echo "make test     build and run the test suite (Check), then the interop test"
	@echo "make interop  the official A2A JS client (@a2a-js/sdk) against a2ad (needs node, npm)"
	@echo "make ui-test  the web dashboard in headless chromium (needs chromium, node, npm)"
	@echo "make asan     the test suite under AddressSanitizer + UBSan (build/asan)"
	@echo "make tsan     the test suite under ThreadSanitizer (build/tsan)"
	@echo "make install  install to \$$DESTDIR\$$PREFIX (binary, plugins, header, config, unit)"
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

$(BUILD)/obj/daemon/%.o: daemon/%.c $(wildcard daemon/*.h) include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $(PKG_CFLAGS) -c $< -o $@

# The dashboard's files (daemon/ui/) built into the binary.
$(BUILD)/gen/ui_files.c: $(UI_FILES) scripts/embed-ui.sh
	@mkdir -p $(dir $@)
	scripts/embed-ui.sh $@ $(UI_FILES)
$(BUILD)/obj/gen/ui_files.o: $(BUILD)/gen/ui_files.c daemon/ui_files.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -c $< -o $@

$(BUILD)/a2ad: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS_A) $^ -o $@ $(PKG_LIBS) -ldl -lpthread -lm

# a2ctl, the command-line client: libcurl and cJSON only.
$(BUILD)/a2ctl: tools/a2ctl/a2ctl.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) $(shell pkg-config --cflags libcurl libcjson 2>/dev/null) $< -o $@ \
	  $(LDFLAGS_A) $(shell pkg-config --libs libcurl libcjson 2>/dev/null)

$(BUILD)/plugins/%.so: plugins/%.c include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -fPIC -fvisibility=hidden -shared $< -o $@ $(LDFLAGS_A) -lpthread

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c include/a2ad/agent.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -fPIC -fvisibility=hidden -shared $< -o $@ $(LDFLAGS_A) -lpthread

$(BUILD)/obj/tests/%.o: tests/%.c $(wildcard tests/*.h tests/support/*.h daemon/*.h) include/a2ad/agent.h | $(DEPS_TEST_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_A) -Itests $(PKG_CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(BUILD)/tests/a2ad-tests: $(TEST_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_A) $^ -o $@ $(PKG_LIBS) $(CHECK_LIBS) -ldl -lpthread -lm

run: all
	$(BUILD)/a2ad -c conf/a2ad.conf

# The suite finds the daemon, the plugins and the test plugins under A2AD_BUILD.
test: all $(TPLUGINS) $(BUILD)/tests/a2ad-tests check-header
	A2AD_BUILD=$(BUILD) $(BUILD)/tests/a2ad-tests
	tests/interop/run.sh $(BUILD)
	tests/ui/run.sh $(BUILD)

# The web dashboard (/ui/) in Debian's headless chromium (needs node, npm).
ui-test: all
	tests/ui/run.sh $(BUILD)

# The official A2A JavaScript client (@a2a-js/sdk 0.3 and 1.x) against the daemon.
interop: all
	tests/interop/run.sh $(BUILD)

# Benchmarks: bench/bench.sh starts everything on 127.0.0.1 and prints a
# table; it installs nothing and says what is missing.
BENCH_BIN := $(BUILD)/bench/sink $(BUILD)/bench/startup
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

# The public header must compile on its own, strictly.
check-header:
	@$(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -Iinclude -x c include/a2ad/agent.h
	@echo "include/a2ad/agent.h compiles standalone (-std=c11 -pedantic)"

# The installed configuration is conf/production.conf (credentials required,
# no example agents; the examples go to lib/a2ad/examples, not loaded), not
# the open `make run` demo, which is kept as a commented example.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/a2ad/plugins \
	  $(DESTDIR)$(PREFIX)/lib/a2ad/examples $(DESTDIR)$(PREFIX)/share/doc/a2ad \
	  $(DESTDIR)$(PREFIX)/include/a2ad $(DESTDIR)/etc/a2ad $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/a2ad $(DESTDIR)$(PREFIX)/bin/a2ad
	install -m 755 $(BUILD)/a2ctl $(DESTDIR)$(PREFIX)/bin/a2ctl
	install -m 644 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/a2ad/examples/
	install -m 644 include/a2ad/agent.h $(DESTDIR)$(PREFIX)/include/a2ad/agent.h
	install -m 644 conf/a2ad.conf $(DESTDIR)$(PREFIX)/share/doc/a2ad/a2ad.conf.example
	test -e $(DESTDIR)/etc/a2ad/a2ad.conf || \
	  sed -e 's|^dir = .*|dir = $(PREFIX)/lib/a2ad/plugins|' \
	      -e 's|PREFIX/share|$(PREFIX)/share|' conf/production.conf > $(DESTDIR)/etc/a2ad/a2ad.conf
	test -e $(DESTDIR)/etc/a2ad/tokens || \
	  printf '%s\n' '# a2ad credentials: NAME sha256:HEX [admin] [agents=a,b], one per line.' \
	    '# Make a line with: openssl rand -hex 32 | tee NAME.token | a2ad --hash-token NAME' \
	    > $(DESTDIR)/etc/a2ad/tokens
	sed -e 's|/usr/local|$(PREFIX)|g' systemd/a2ad.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/a2ad.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/a2ad $(DESTDIR)$(PREFIX)/bin/a2ctl $(DESTDIR)$(PREFIX)/include/a2ad/agent.h \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system/a2ad.service
	rm -rf $(DESTDIR)$(PREFIX)/lib/a2ad $(DESTDIR)$(PREFIX)/share/doc/a2ad

clean:
	rm -rf build

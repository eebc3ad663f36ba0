# SPDX-License-Identifier: BSD-3-Clause
#
# btrail: one non-recursive Makefile. Quiet by default; V=1 shows commands.
# SANITIZE=1 builds everything with ASan + UBSan into build-san/.
#
#   make            library, CLI, tests and benchmarks (no run)
#   make test       install missing Debian packages, build, run every test
#   make demo       install missing Debian packages, build, run the demo
#   make bench      build and run the benchmarks
#   make install PREFIX=/usr/local [DESTDIR=...]

VERSION		:= 0.1.0
SOVERSION	:= 0

CC		?= cc
ifeq ($(origin CC),default)
CC		:= cc
endif
AR		?= ar
PKG_CONFIG	?= pkg-config
CFLAGS		?= -O2 -g
PREFIX		?= /usr/local
DESTDIR		?=
BINDIR		:= $(PREFIX)/bin
LIBDIR		:= $(PREFIX)/lib
INCDIR		:= $(PREFIX)/include
MANDIR		:= $(PREFIX)/share/man
DOCDIR		:= $(PREFIX)/share/doc/btrail

ifeq ($(SANITIZE),1)
BUILD		?= build-san
SAN_FLAGS	:= -fsanitize=address,undefined -fno-omit-frame-pointer \
		   -fno-sanitize-recover=undefined
else
BUILD		?= build
SAN_FLAGS	:=
endif

Q	= $(if $(filter 1,$(V)),,@)
msg	= $(if $(filter 1,$(V)),,@printf '  %-7s %s\n' $(1) $(2);)

WARN	:= -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wformat=2 -Wvla -Wundef -Werror

# Packages that have a pkg-config file; libipt has none (-lipt).
PKGS	:= msgpack numa uuid capstone libelf json-c libdw
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SAN_FLAGS) \
	      -fvisibility=hidden -fPIC -Iinclude -Isrc -Itests -MMD -MP $(PKG_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)
LIBS	:= $(PKG_LIBS) -lipt -lpthread

LIB_SRC	:= $(sort $(wildcard src/common/*.c src/ds/*.c src/collector/*.c \
			     src/decoder/*.c src/broker/*.c))
CLI_SRC	:= $(sort $(wildcard tools/btrail/*.c tools/btraild/*.c))
TEST_SRC := $(sort $(filter-out tests/helpers/% tests/progs/% tests/fuzz/%,\
		$(wildcard tests/*/*.c)))
TEST_HELPER_SRC := $(sort $(wildcard tests/helpers/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
# Programs the step/pt-emu tests and benchmarks trace: built plainly (no
# sanitizers: a stepped process runs every instruction under ptrace).
PROG_SRC := $(sort $(wildcard tests/progs/*.c))

LIB_OBJ	:= $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ	:= $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_HELPER_OBJ := $(TEST_HELPER_SRC:%.c=$(BUILD)/%.o)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
PROG_BIN := $(PROG_SRC:tests/progs/%.c=$(BUILD)/tests/progs/%)

STATIC	:= $(BUILD)/libbtrail.a
SHARED	:= $(BUILD)/libbtrail.so.$(VERSION)
CLI	:= $(BUILD)/btrail
RUNNER	:= $(BUILD)/tests/run

all: $(STATIC) $(SHARED) $(CLI) $(RUNNER) $(BENCH_BIN) $(PROG_BIN)

$(STATIC): $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ) libbtrail.map
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libbtrail.so.$(SOVERSION) \
		-Wl,--version-script=libbtrail.map -Wl,--no-undefined \
		-o $@ $(LIB_OBJ) $(LIBS)
	$(Q)ln -sf libbtrail.so.$(VERSION) $(BUILD)/libbtrail.so.$(SOVERSION)
	$(Q)ln -sf libbtrail.so.$(SOVERSION) $(BUILD)/libbtrail.so

# The CLI links the static library: one self-contained binary.
$(CLI): $(CLI_OBJ) $(STATIC)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

# All test files link into one Criterion runner; tests may use src/ headers.
$(RUNNER): $(TEST_OBJ) $(TEST_HELPER_OBJ) $(STATIC)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(TEST_OBJ) $(TEST_HELPER_OBJ) $(STATIC) \
		$(LIBS) -lcriterion

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(STATIC)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(BUILD)/tests/progs/%: tests/progs/%.c
	$(call msg,PROG,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu11 -O1 -g -fno-omit-frame-pointer -pthread -Wall \
		-o $@ $<

$(BUILD)/%.o: %.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# Install the packages the build and the tests need, when they are missing.
deps:
	$(Q)scripts/deps.sh

# Unit, integration and CLI tests. BTRAIL_BIN lets tests run the CLI.
# --jobs 2: the machines are 2-core; heavy tests fork their own processes.
check: all
	$(Q)BTRAIL_BIN=$(abspath $(CLI)) BTRAIL_SRCDIR=$(CURDIR) \
		BTRAIL_PROGS=$(abspath $(BUILD)/tests/progs) \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(RUNNER) --jobs $(or $(JOBS),2) $(TESTFLAGS)
	$(Q)SAN_FLAGS="$(SAN_FLAGS)" scripts/installcheck.sh $(BUILD)

test: deps
	$(Q)$(MAKE) --no-print-directory check

demo: deps
	$(Q)$(MAKE) --no-print-directory $(CLI) $(PROG_BIN)
	$(Q)scripts/demo.sh $(abspath $(CLI))

bench: $(BENCH_BIN) $(PROG_BIN)
	$(Q)for b in $(BENCH_BIN); do echo "== $$b"; \
		BTRAIL_PROGS=$(abspath $(BUILD)/tests/progs) $$b || exit 1; done

btrail.pc: btrail.pc.in Makefile
	$(call msg,GEN,$@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		-e 's|@PKGS@|$(PKGS)|' $< > $(BUILD)/btrail.pc

install: $(STATIC) $(SHARED) $(CLI) btrail.pc
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCDIR)/btrail $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(DOCDIR)
	$(Q)install -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/btrail
	$(Q)install -m 0644 $(STATIC) $(DESTDIR)$(LIBDIR)/libbtrail.a
	$(Q)install -m 0755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf libbtrail.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libbtrail.so.$(SOVERSION)
	$(Q)ln -sf libbtrail.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libbtrail.so
	$(Q)install -m 0644 include/btrail/*.h $(DESTDIR)$(INCDIR)/btrail/
	$(Q)install -m 0644 $(BUILD)/btrail.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	$(Q)install -m 0644 docs/*.1 $(DESTDIR)$(MANDIR)/man1/
	$(Q)install -m 0644 docs/*.7 $(DESTDIR)$(MANDIR)/man7/
	$(Q)install -m 0644 docs/*.md README.md $(DESTDIR)$(DOCDIR)/

uninstall:
	$(Q)rm -f $(DESTDIR)$(BINDIR)/btrail $(DESTDIR)$(LIBDIR)/libbtrail.* \
		$(DESTDIR)$(LIBDIR)/pkgconfig/btrail.pc
	$(Q)rm -rf $(DESTDIR)$(INCDIR)/btrail $(DESTDIR)$(DOCDIR)
	$(Q)cd docs && for m in *.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$$m; done
	$(Q)cd docs && for m in *.7; do rm -f $(DESTDIR)$(MANDIR)/man7/$$m; done

# libFuzzer harnesses (clang), each run FUZZ_TIME seconds: docs/fuzzing.md.
fuzz fuzz-build:
	$(Q)$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk $@

clean:
	$(Q)rm -rf build build-san

.PHONY: all deps check test demo bench install uninstall clean btrail.pc \
	fuzz fuzz-build
.DELETE_ON_ERROR:
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) \
	 $(TEST_HELPER_OBJ:.o=.d) $(BENCH_BIN:=.d)

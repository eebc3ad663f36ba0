# SPDX-License-Identifier: BSD-3-Clause
#
# libFuzzer harnesses of tests/fuzz/ (docs/fuzzing.md). Run through the
# main Makefile: `make fuzz [FUZZ_TIME=seconds per harness]`, or
# `make fuzz-build` to only build. The library sources are compiled again
# with clang (libFuzzer's coverage needs it) into $(FUZZ_BUILD); a new
# harness is one file tests/fuzz/fuzz_<name>.c plus seeds in
# tests/fuzz/corpus/<name>/.

FUZZ_CC		?= clang
FUZZ_BUILD	?= build-fuzz
FUZZ_TIME	?= 20
FUZZ_FLAGS	?=
PKG_CONFIG	?= pkg-config

FZ_PKGS		:= msgpack numa uuid capstone libelf json-c libdw
FZ_SAN		:= -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		   -fno-omit-frame-pointer
FZ_CFLAGS	:= -std=c11 -D_GNU_SOURCE -g -O1 $(FZ_SAN) -Iinclude -Isrc \
		   -MMD -MP $(shell $(PKG_CONFIG) --cflags $(FZ_PKGS))
FZ_WARN		:= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla -Werror
FZ_LIBS		:= $(shell $(PKG_CONFIG) --libs $(FZ_PKGS)) -lipt -lpthread

FZ_LIB_SRC	:= $(sort $(wildcard src/common/*.c src/ds/*.c \
				     src/collector/*.c src/decoder/*.c \
				     src/broker/*.c))
FZ_LIB_OBJ	:= $(FZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FZ_SRC		:= $(sort $(wildcard tests/fuzz/fuzz_*.c))
FZ_NAMES	:= $(FZ_SRC:tests/fuzz/fuzz_%.c=%)
FZ_BIN		:= $(FZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FZ_LIB		:= $(FUZZ_BUILD)/libbtrail-fuzz.a

fuzz: $(FZ_BIN)
	@for h in $(FZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/crash; \
		echo "== fuzz_$$h ($(FUZZ_TIME) s)"; \
		$(FUZZ_BUILD)/fuzz_$$h -max_total_time=$(FUZZ_TIME) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/crash/$$h- $(FUZZ_FLAGS) \
			$(FUZZ_BUILD)/corpus/$$h tests/fuzz/corpus/$$h \
			> $(FUZZ_BUILD)/fuzz_$$h.log 2>&1 || \
			{ tail -60 $(FUZZ_BUILD)/fuzz_$$h.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
			$(FUZZ_BUILD)/fuzz_$$h.log | tr '\n' ' '; echo; \
	done

fuzz-build: $(FZ_BIN)

$(FZ_LIB): $(FZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

# The library: coverage instrumentation, no libFuzzer main.
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(@D)
	@printf '  %-7s %s\n' FUZZCC $<
	@$(FUZZ_CC) $(FZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FZ_LIB)
	@printf '  %-7s %s\n' FUZZLD $@
	@$(FUZZ_CC) $(FZ_CFLAGS) $(FZ_WARN) -fsanitize=fuzzer -o $@ $< \
		$(FZ_LIB) $(FZ_LIBS)

.PHONY: fuzz fuzz-build
.DELETE_ON_ERROR:
-include $(FZ_LIB_OBJ:.o=.d)

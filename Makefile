# Makefile for the tgfront daemon, its unit tests and fuzz targets.
# build.sh drives it (it fetches and compiles BearSSL first); by hand:
#   make PROFILE=musl BEARSSL_INC=out/src/bearssl-<ver>/inc all unit
# PROFILE picks compiler, flags and output folder; each variable below can
# still be overridden on the command line.
#   musl  static daemon with musl-gcc           -> out/musl/
#   asan  clang, ASan+UBSan, glibc, not static  -> out/asan/
#   fuzz  clang libFuzzer targets (ASan+UBSan)  -> out/fuzz/
#   arm64 static aarch64 daemon, cross-compiled with Debian's
#         aarch64-linux-musl-gcc (musl-dev:arm64) -> out/arm64/

PROFILE ?= musl

ifeq ($(PROFILE),musl)
  PROFILE_CC       := musl-gcc
  PROFILE_OPT      := -O2
  PROFILE_SAN      :=
  PROFILE_LDFLAGS  := -static
  PROFILE_BEARSSL  := out/musl/libbearssl.a
else ifeq ($(PROFILE),arm64)
  # musl-dev:arm64's wrapper: the cross gcc plus musl's specs file.
  PROFILE_CC       := aarch64-linux-musl-gcc
  PROFILE_OPT      := -O2
  PROFILE_SAN      :=
  PROFILE_LDFLAGS  := -static
  PROFILE_BEARSSL  := out/arm64/libbearssl.a
  PROFILE_STRIP    := aarch64-linux-gnu-strip
  # ARMv8 Cryptography Extensions AES, picked at run time (HWCAP_AES).
  PROFILE_SRCS     := src/crypto_armv8.c
else ifeq ($(PROFILE),asan)
  PROFILE_CC       := clang
  PROFILE_OPT      := -O1 -g
  PROFILE_SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer \
                      -fno-sanitize-recover=all
  PROFILE_LDFLAGS  :=
  PROFILE_BEARSSL  := out/asan/libbearssl.a
else ifeq ($(PROFILE),fuzz)
  PROFILE_CC       := clang
  PROFILE_OPT      := -O1 -g
  # fuzzer-no-link instruments our code for coverage; the fuzzer runtime
  # (and its main) is linked only into the fuzz_* binaries.
  PROFILE_SAN      := -fsanitize=fuzzer-no-link,address,undefined \
                      -fno-omit-frame-pointer -fno-sanitize-recover=all
  PROFILE_LDFLAGS  :=
  PROFILE_BEARSSL  := out/asan/libbearssl.a
else
  $(error unknown PROFILE '$(PROFILE)' (musl, asan, fuzz or arm64))
endif

# CC has a built-in default in make, so ?= would never apply.
ifeq ($(origin CC),default)
  CC := $(PROFILE_CC)
endif
OUT         ?= out/$(PROFILE)
OPT         ?= $(PROFILE_OPT)
SANITIZE    ?= $(PROFILE_SAN)
LDFLAGS     ?= $(PROFILE_LDFLAGS)
BEARSSL_INC ?= $(firstword $(wildcard out/src/bearssl-*/inc))
BEARSSL_LIB ?= $(PROFILE_BEARSSL)
STRIP       ?= $(or $(PROFILE_STRIP),strip)

ifeq ($(BEARSSL_INC)$(filter clean,$(MAKECMDGOALS)),)
  $(error BEARSSL_INC is empty: run ./build.sh (it fetches BearSSL into out/src) or set BEARSSL_INC)
endif

WARN      := -std=c11 -Wall -Wextra -Werror
CPPFLAGS  := -D_GNU_SOURCE -Isrc -I$(BEARSSL_INC)
ALLCFLAGS  = $(WARN) $(OPT) $(SANITIZE) $(CPPFLAGS) $(CFLAGS) -MMD -MP

# Wildcards so a new module or test file is picked up without editing this.
# Architecture-specific files are listed here and built only by the profile
# that names them in PROFILE_SRCS (their instructions would not run elsewhere).
ARCH_SRCS   := src/crypto_armv8.c
# Nayuki's QR Code generator (C), from Debian's qr-code-generator source
# package (build.sh fetches it into out/src), compiled in like BearSSL.
QRCODEGEN_DIR ?= $(firstword $(wildcard out/src/QR-Code-generator-*/c))
ifeq ($(QRCODEGEN_DIR)$(filter clean,$(MAKECMDGOALS)),)
  $(error QRCODEGEN_DIR is empty: run ./build.sh (it fetches qr-code-generator into out/src) or set QRCODEGEN_DIR)
endif
CPPFLAGS    += -I$(QRCODEGEN_DIR)
DAEMON_SRCS := $(filter-out $(ARCH_SRCS),$(wildcard src/*.c)) $(PROFILE_SRCS) \
               $(QRCODEGEN_DIR)/qrcodegen.c
LIB_SRCS    := $(filter-out src/main.c,$(DAEMON_SRCS))
UNIT_SRCS   := $(wildcard tests/unit/*.c)
FUZZ_SRCS   := $(wildcard fuzz/fuzz_*.c)

OBJ         := $(OUT)/obj
LIB_OBJS    := $(LIB_SRCS:%.c=$(OBJ)/%.o)
MAIN_OBJ    := $(OBJ)/src/main.o
UNIT_OBJS   := $(UNIT_SRCS:%.c=$(OBJ)/%.o)
FUZZ_BINS   := $(patsubst fuzz/%.c,$(OUT)/%,$(FUZZ_SRCS))

.PHONY: all unit check fuzz clean
# Keep fuzz target objects (make would delete them as intermediates).
.SECONDARY: $(FUZZ_SRCS:%.c=$(OBJ)/%.o)
.DEFAULT_GOAL := all

# all: the daemon (stripped, what ships) plus tgfront.debug with symbols.
all: $(OUT)/tgfront

unit: $(OUT)/unit-tests

check: $(OUT)/unit-tests
	$(OUT)/unit-tests

fuzz: $(FUZZ_BINS)

$(OUT)/tgfront.debug: $(MAIN_OBJ) $(LIB_OBJS) $(BEARSSL_LIB)
	$(CC) $(OPT) $(SANITIZE) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB_OBJS) $(BEARSSL_LIB)

$(OUT)/tgfront: $(OUT)/tgfront.debug
	$(STRIP) -o $@ $<

$(OUT)/unit-tests: $(UNIT_OBJS) $(LIB_OBJS) $(BEARSSL_LIB)
	$(CC) $(OPT) $(SANITIZE) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(LIB_OBJS) $(BEARSSL_LIB)

$(OUT)/fuzz_%: $(OBJ)/fuzz/fuzz_%.o $(LIB_OBJS) $(BEARSSL_LIB)
	$(CC) $(OPT) $(SANITIZE) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(BEARSSL_LIB)

$(OBJ)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -Itests/unit -c -o $@ $<

# The AES instructions are enabled for this one file only, so the compiler
# cannot emit them anywhere the run-time check does not guard.
$(OBJ)/src/crypto_armv8.o: ALLCFLAGS += -march=armv8-a+crypto

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(BEARSSL_LIB):
	$(error $(BEARSSL_LIB) is missing: run ./build.sh (it compiles BearSSL) or set BEARSSL_LIB)

clean:
	rm -rf out/musl/obj out/asan/obj out/arm64/obj out/fuzz out/musl/tgfront* \
	       out/asan/tgfront* out/arm64/tgfront* out/musl/unit-tests out/asan/unit-tests \
	       out/arm64/unit-tests

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJS:.o=.d) $(FUZZ_SRCS:%.c=$(OBJ)/%.d)

# flare: build, test, bench, install. `make help` lists the targets.
#
#   make            the `flare` executable and the Lua module build/flare/core.so
#   make test       the specs, then the same specs under ASan+UBSan; ends with "N passed, N failed"
#   make bench      scripts/bench (with PyTorch's figures in the same run when it is installed)
#   make demo       trains a model on the bundled data
#   make install    PREFIX=/usr/local
#   make deps       installs missing Debian packages (run by the targets above)

PREFIX ?= /usr/local
CC ?= cc
LUA_INC ?= /usr/include/lua5.4
BUILD := build

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith \
        -Wno-unused-parameter
# -fno-math-errno: nothing reads errno after libm calls, and setting it blocks vectorising sqrt
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -fPIC -fno-math-errno $(WARN) -I$(LUA_INC) -MMD -MP
CFLAGS ?= -O2 -g
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LIBS := -lz -lm -lpthread -ldl

ENGINE_SRC := $(wildcard vm/*.c kernels/cpu/*.c bindings/*.c)
REPL_SRC := $(wildcard repl/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
REPL_OBJ := $(REPL_SRC:%.c=$(BUILD)/obj/%.o)
SAN_ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/asan/obj/%.o)
SAN_REPL_OBJ := $(REPL_SRC:%.c=$(BUILD)/asan/obj/%.o)

# Line editing: libedit (BSD licence; see README for why not GNU readline).
EDIT_LIBS := -ledit
LUA_LIBS := -llua5.4

DEBIAN_PKGS := lua5.4 liblua5.4-dev libopenblas-dev lua-busted zlib1g-dev gnuplot-nox libedit-dev g++

# ---------------------------------------------------------------- CUDA
#
# kernels/cuda/ becomes build/flare/cuda.so when nvcc is found (`make CUDA=0` skips it); the
# engine dlopen()s it on first use, so the same build runs on machines without a GPU. The
# same sources, compiled by g++ against kernels/cuda/emu/, give build/flare/cuda_emu.so: the
# CUDA emulator the specs run on when there is no GPU (FLARE_CUDA=emu).
CXX ?= g++
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA ?= $(if $(NVCC),1,0)
# Hopper natively, Ampere and Ada (cheap), and PTX of sm_90 for newer chips to compile at load.
CUDA_ARCHS ?= 80 86 90
CUDA_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
                -gencode arch=compute_90,code=compute_90
NVCC_FLAGS := -std=c++17 -O3 -Xcompiler -fPIC,-Wall -MMD -MP $(CUDA_GENCODE)
CUDA_LIBS := -lcublas
EMU_FLAGS := -std=c++17 -O2 -g -fPIC -DFL_CUDA_EMU -Wall -Wextra -Wno-unused-parameter -MMD -MP

CUDA_SRC := $(wildcard kernels/cuda/*.cu)
EMU_SRC := $(wildcard kernels/cuda/emu/*.cc)
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/cuda/obj/%.o)
EMU_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/emu/obj/%.o) $(EMU_SRC:%.cc=$(BUILD)/emu/obj/%.o)
# the dtype helpers the kernels share with the engine
CUDA_HOST_OBJ := $(BUILD)/obj/vm/dtype.o
CUDA_LIBS_BUILT := $(BUILD)/flare/cuda_emu.so $(if $(filter 1,$(CUDA)),$(BUILD)/flare/cuda.so)

.PHONY: all deps test test-plain test-asan bench demo install uninstall clean help check-tools

all: deps $(BUILD)/flare/core.so flare $(CUDA_LIBS_BUILT)

$(BUILD)/flare/cuda.so: $(CUDA_OBJ) $(CUDA_HOST_OBJ)
	@mkdir -p $(dir $@)
	$(NVCC) -shared $(CUDA_GENCODE) -o $@ $^ -Xlinker --no-undefined $(CUDA_LIBS)

$(BUILD)/cuda/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

$(BUILD)/flare/cuda_emu.so: $(EMU_OBJ) $(CUDA_HOST_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) -shared -o $@ $^ -Wl,--no-undefined -lpthread -lm

$(BUILD)/emu/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) -x c++ $(EMU_FLAGS) -c -o $@ $<

$(BUILD)/emu/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -c -o $@ $<

flare: $(BUILD)/bin/flare
	ln -sf $(BUILD)/bin/flare flare

$(BUILD)/flare/core.so: $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(LIBS)

$(BUILD)/bin/flare: $(ENGINE_OBJ) $(REPL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -Wl,-E $(LUA_LIBS) $(EDIT_LIBS) $(LIBS)

# Kernels at -O3: its loop unswitching turns option branches into straight loops that vectorise.
$(BUILD)/obj/kernels/%.o: CFLAGS += -O3

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -c -o $@ $<

# The sanitized build: the same sources, its own objects and executable.
$(BUILD)/asan/bin/flare: $(SAN_ENGINE_OBJ) $(SAN_REPL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -o $@ $^ -Wl,-E $(LUA_LIBS) $(EDIT_LIBS) $(LIBS)

$(BUILD)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SAN_FLAGS) -c -o $@ $<

-include $(ENGINE_OBJ:.o=.d) $(REPL_OBJ:.o=.d) $(SAN_ENGINE_OBJ:.o=.d) $(SAN_REPL_OBJ:.o=.d)
-include $(CUDA_OBJ:.o=.d) $(EMU_OBJ:.o=.d)

# ---------------------------------------------------------------- dependencies

deps:
	@scripts/deps.sh $(DEBIAN_PKGS)

# ---------------------------------------------------------------- tests

# Builds in parallel: the two CUDA libraries and the sanitized build take a while.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(BUILD)/asan/bin/flare
	@scripts/test.sh

bench: all
	@scripts/bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@./flare scripts/train_digits.lua --plot

# ---------------------------------------------------------------- install

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4/flare $(DESTDIR)$(PREFIX)/share/lua/5.4/flare
	install -m 755 $(BUILD)/bin/flare $(DESTDIR)$(PREFIX)/bin/flare
	install -m 755 $(BUILD)/flare/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/flare/core.so
	cp -R stdlib/flare/. $(DESTDIR)$(PREFIX)/share/lua/5.4/flare/
	install -d $(DESTDIR)$(PREFIX)/share/flare/data
	install -m 644 data/* $(DESTDIR)$(PREFIX)/share/flare/data/
	@echo "installed: $(DESTDIR)$(PREFIX)/bin/flare, lib/lua/5.4/flare/core.so, share/lua/5.4/flare/"

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/flare $(DESTDIR)$(PREFIX)/lib/lua/5.4/flare $(DESTDIR)$(PREFIX)/share/lua/5.4/flare $(DESTDIR)$(PREFIX)/share/flare

clean:
	rm -rf $(BUILD) flare

help:
	@sed -n '1,12p' Makefile

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

DEBIAN_PKGS := lua5.4 liblua5.4-dev libopenblas-dev lua-busted zlib1g-dev gnuplot-nox libedit-dev

.PHONY: all deps test test-plain test-asan bench demo install uninstall clean help check-tools

all: deps $(BUILD)/flare/core.so flare

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

# ---------------------------------------------------------------- dependencies

deps:
	@scripts/deps.sh $(DEBIAN_PKGS)

# ---------------------------------------------------------------- tests

test: deps all $(BUILD)/asan/bin/flare
	@scripts/test.sh

bench: all
	@scripts/bench/run.sh

demo: all
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

# Thin wrapper over CMake. The two commands of the README: `make run`, `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build build-asan run test test-plain test-asan bench lint format clean

all: build

deps:
	@tools/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DATES_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@tools/run.sh $(BUILD)/ates

# The whole suite, plain and then under ASan+UBSan; then clang-tidy and cppcheck.
test: test-plain test-asan lint

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

bench: build
	@tools/bench.sh $(BUILD)

lint: build
	@tools/lint.sh $(BUILD)

format:
	clang-format -i core/*.c core/*.h plugins/*/*.c plugins/*/*.h tests/unit/*.c tests/integration/*.c 2>/dev/null || true

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Thin wrapper over CMake. The two commands of the README: `make run`, `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 30
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build build-asan build-fuzz run test test-plain test-asan test-fuzz fuzz bench lint format clean

all: build

deps:
	@tools/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DATES_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

build-fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATES_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

run: build
	@tools/run.sh $(BUILD)/ates

# The whole suite, plain and then under ASan+UBSan; a short run of every
# fuzzer; then clang-tidy and cppcheck.
test: test-plain test-asan test-fuzz lint

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# A short run of each fuzzer (part of make test); `make fuzz` runs longer.
test-fuzz: build-fuzz
	@tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

fuzz: build-fuzz
	@tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	@tools/bench.sh $(BUILD)

lint: build
	@tools/lint.sh $(BUILD)

format:
	clang-format -i core/*.c core/*.h plugins/*/*.c plugins/*/*.h tests/unit/*.c tests/integration/*.c 2>/dev/null || true

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

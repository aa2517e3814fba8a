/*
 * fuzz: what the fuzz targets share. Each fuzz_*.c defines the libFuzzer
 * entry points; built with clang -fsanitize=fuzzer (make fuzz) they are
 * fuzzers, linked with replay.c they replay their seed corpus and every
 * kept crash input as a CTest test (plain and ASan builds).
 */
#ifndef ATES_FUZZ_H
#define ATES_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The source tree (ATES_SRC, else the directory compiled in). */
const char *fuzz_src_dir(void);
/* A fresh private directory for this process, made once. */
const char *fuzz_tmp_dir(void);
/* A NUL-terminated copy of data[0..size) (freed by the caller). */
char *fuzz_strndup(const uint8_t *data, size_t size);

#endif

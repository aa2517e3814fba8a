/*
 * uuid: UUIDv7 with a per-process monotonic sequence (see uuid.h).
 *
 * Layout (RFC 9562, method 1 "fixed bit-length dedicated counter"):
 * 48 bits unix ms | 4 bits version 7 | 12 bits counter | 2 bits variant |
 * 62 bits random. Within one millisecond the counter increases; when it
 * would wrap, the timestamp is advanced by one ms so order still holds.
 */
#include "uuid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

static pthread_mutex_t seq_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms;
static unsigned last_seq;

/* Random bytes come from a per-thread pool refilled by getrandom (one
 * syscall per UUID_POOL / 16 ids instead of one per id). A forked child
 * must never reuse its parent's pool: fork bumps a generation that empties
 * every pool in the child. */
#define UUID_POOL 512

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static atomic_uint fork_gen;

static void after_fork_child(void) { atomic_fetch_add(&fork_gen, 1); }
static void register_fork(void) { pthread_atfork(NULL, NULL, after_fork_child); }

static void fill_random(unsigned char *buf, size_t len)
{
    static _Thread_local unsigned char pool[UUID_POOL];
    static _Thread_local size_t left;
    static _Thread_local unsigned gen;
    pthread_once(&fork_once, register_fork);
    unsigned now = atomic_load(&fork_gen);
    if (gen != now) {
        left = 0;
        gen = now;
    }
    if (left < len) {
        size_t off = 0;
        while (off < sizeof(pool)) {
            ssize_t n = getrandom(pool + off, sizeof(pool) - off, 0);
            if (n > 0) off += (size_t)n;
        }
        left = sizeof(pool);
    }
    memcpy(buf, pool + sizeof(pool) - left, len);
    memset(pool + sizeof(pool) - left, 0, len); /* used bytes do not linger */
    left -= len;
}

void uuid_v7(char out[UUID_LEN])
{
    unsigned char b[16];
    fill_random(b, sizeof(b));

    int64_t ms = clock_now_ms();
    unsigned seq;
    pthread_mutex_lock(&seq_lock);
    if (ms <= last_ms) {
        ms = last_ms;
        if (++last_seq > 0xfff) { /* counter spent: borrow the next millisecond */
            ms = ++last_ms;
            last_seq = (unsigned)(b[6] & 0x07) << 8 | b[7]; /* random start, room to grow */
        }
    } else {
        last_ms = ms;
        last_seq = (unsigned)(b[6] & 0x07) << 8 | b[7];
    }
    seq = last_seq;
    pthread_mutex_unlock(&seq_lock);

    uint64_t t = (uint64_t)ms;
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(t >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));

    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

bool uuid_valid(const char *text)
{
    if (!text || strlen(text) != 36) return false;
    for (int i = 0; i < 36; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

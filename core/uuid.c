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
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

static pthread_mutex_t seq_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms;
static unsigned last_seq;

static void fill_random(unsigned char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = getrandom(buf + off, len - off, 0);
        if (n > 0) off += (size_t)n;
    }
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

/*
 * db_vfs: a thin VFS over SQLite's default one that turns the many small
 * writes of a WAL commit into one.
 *
 * SQLite appends a commit to the WAL frame by frame, each frame with two
 * writes (its 24-byte header, then the page): a commit of 40 pages costs 80
 * pwrite calls, and system calls are dear on this kind of machine (a tenth
 * of a shuffle's thread, more of a group commit's). Here the writes to a WAL
 * file that continue the previous one are gathered in a buffer, which goes
 * out in one pwrite per 128 KiB (the most the unix VFS writes at once) when:
 *   - the page of a commit frame (a frame header whose "database size after
 *     commit" is not 0) has been added: before the write returns, so before
 *     SQLite publishes the commit in the WAL index for other connections;
 *   - a write does not continue the buffer (SQLite rewrites a frame of the
 *     same transaction in place, or writes the WAL header);
 *   - the buffer is full (DB_VFS_BUF);
 *   - anything else touches the file: a read, sync, truncate, size, lock,
 *     file control or close.
 * What reaches the file, and in which order, is what SQLite wrote; only the
 * number of calls changes. A crash loses what a crash before those writes
 * would have lost: the frames of a commit that had not returned.
 *
 * Every file is opened by the default VFS and reached through the
 * forwarding methods below; only a WAL's writes are gathered. Registered
 * once per process as the default VFS (db_vfs_register).
 */
#include "db_vfs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define DB_VFS_NAME "ates"
#define DB_VFS_BUF (512 * 1024)    /* bytes gathered at most (per WAL handle) */
#define DB_VFS_PIECE 131071        /* the unix VFS masks a write's length to 17 bits */
#define WAL_HEADER 32              /* bytes before the first frame */
#define FRAME_HEADER 24            /* bytes before each frame's page */

typedef struct wal_file {
    sqlite3_file base;   /* pMethods: wal_methods */
    sqlite3_file *real;  /* the default VFS's file, right after this struct */
    bool wal;            /* a WAL: writes are gathered; anything else: forwarded */
    char *buf;           /* gathered writes, NULL until the first */
    sqlite3_int64 buf_off; /* file offset of buf[0] */
    int buf_len;
    sqlite3_int64 commit_page; /* offset of the commit frame's page, -1: none */
} wal_file_t;

static sqlite3_vfs g_vfs;      /* ours: a copy of the default with xOpen replaced */
static sqlite3_vfs *g_parent;  /* the default VFS */
static sqlite3_io_methods g_wal_methods;

static int flush(wal_file_t *f)
{
    int rc = SQLITE_OK;
    for (int done = 0; done < f->buf_len && rc == SQLITE_OK; done += DB_VFS_PIECE) {
        int n = f->buf_len - done < DB_VFS_PIECE ? f->buf_len - done : DB_VFS_PIECE;
        rc = f->real->pMethods->xWrite(f->real, f->buf + done, n, f->buf_off + done);
    }
    f->buf_len = 0;
    f->commit_page = -1;
    return rc;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int wal_write(sqlite3_file *pf, const void *data, int amt, sqlite3_int64 off)
{
    wal_file_t *f = (wal_file_t *)pf;
    if (!f->wal) return f->real->pMethods->xWrite(f->real, data, amt, off);
    if (f->buf_len > 0 && (off != f->buf_off + f->buf_len || f->buf_len + amt > DB_VFS_BUF)) {
        int rc = flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    if (off < WAL_HEADER || amt > DB_VFS_PIECE) { /* the header, or too big: as it is */
        return f->real->pMethods->xWrite(f->real, data, amt, off);
    }
    if (!f->buf && !(f->buf = malloc((size_t)DB_VFS_BUF))) /* no buffer: unbuffered, still right */
        return f->real->pMethods->xWrite(f->real, data, amt, off);
    if (f->buf_len == 0) f->buf_off = off;
    memcpy(f->buf + f->buf_len, data, (size_t)amt);
    f->buf_len += amt;
    /* a frame header of a commit: its page comes next, then the commit is out */
    if (amt == FRAME_HEADER && be32((const unsigned char *)data + 4) != 0)
        f->commit_page = off + FRAME_HEADER;
    else if (f->commit_page >= 0 && off == f->commit_page)
        return flush(f);
    return SQLITE_OK;
}

static int wal_close(sqlite3_file *pf)
{
    wal_file_t *f = (wal_file_t *)pf;
    int rc = flush(f);
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* The rest flush first, then forward. */
#define REAL(pf) (((wal_file_t *)(pf))->real)
#define FLUSH_OR_RETURN(pf)                                                                    \
    do {                                                                                       \
        int frc_ = flush((wal_file_t *)(pf));                                                  \
        if (frc_ != SQLITE_OK) return frc_;                                                    \
    } while (0)

static int wal_read(sqlite3_file *pf, void *data, int amt, sqlite3_int64 off)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xRead(REAL(pf), data, amt, off);
}

static int wal_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xTruncate(REAL(pf), size);
}

static int wal_sync(sqlite3_file *pf, int flags)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xSync(REAL(pf), flags);
}

static int wal_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFileSize(REAL(pf), size);
}

static int wal_lock(sqlite3_file *pf, int level)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xLock(REAL(pf), level);
}

static int wal_unlock(sqlite3_file *pf, int level)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xUnlock(REAL(pf), level);
}

static int wal_check_lock(sqlite3_file *pf, int *out)
{
    return REAL(pf)->pMethods->xCheckReservedLock(REAL(pf), out);
}

static int wal_control(sqlite3_file *pf, int op, void *arg)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFileControl(REAL(pf), op, arg);
}

static int wal_sector(sqlite3_file *pf) { return REAL(pf)->pMethods->xSectorSize(REAL(pf)); }

static int wal_caps(sqlite3_file *pf)
{
    return REAL(pf)->pMethods->xDeviceCharacteristics(REAL(pf));
}

static int wal_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **out)
{
    return REAL(pf)->pMethods->xShmMap(REAL(pf), pg, pgsz, extend, out);
}

static int wal_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    return REAL(pf)->pMethods->xShmLock(REAL(pf), offset, n, flags);
}

static void wal_shm_barrier(sqlite3_file *pf) { REAL(pf)->pMethods->xShmBarrier(REAL(pf)); }

static int wal_shm_unmap(sqlite3_file *pf, int del)
{
    return REAL(pf)->pMethods->xShmUnmap(REAL(pf), del);
}

static int wal_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **out)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFetch(REAL(pf), off, amt, out);
}

static int wal_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    return REAL(pf)->pMethods->xUnfetch(REAL(pf), off, p);
}

static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                    int *out_flags)
{
    (void)vfs;
    wal_file_t *f = (wal_file_t *)pf;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    f->commit_page = -1;
    int rc = g_parent->xOpen(g_parent, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        /* SQLite calls xClose only when pMethods is set: close what opened */
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        pf->pMethods = NULL;
        return rc;
    }
    /* every file is reached through the forwarders (they are given our
     * struct, not the real one); only a WAL's writes are gathered */
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    pf->pMethods = &g_wal_methods;
    return SQLITE_OK;
}

static void setup(void)
{
    g_parent = sqlite3_vfs_find(NULL);
    if (!g_parent) return;
    g_vfs = *g_parent;
    g_vfs.zName = DB_VFS_NAME;
    g_vfs.szOsFile = (int)sizeof(wal_file_t) + g_parent->szOsFile;
    g_vfs.xOpen = vfs_open;
    g_vfs.pNext = NULL;
    g_wal_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = wal_close,
        .xRead = wal_read,
        .xWrite = wal_write,
        .xTruncate = wal_truncate,
        .xSync = wal_sync,
        .xFileSize = wal_size,
        .xLock = wal_lock,
        .xUnlock = wal_unlock,
        .xCheckReservedLock = wal_check_lock,
        .xFileControl = wal_control,
        .xSectorSize = wal_sector,
        .xDeviceCharacteristics = wal_caps,
        .xShmMap = wal_shm_map,
        .xShmLock = wal_shm_lock,
        .xShmBarrier = wal_shm_barrier,
        .xShmUnmap = wal_shm_unmap,
        .xFetch = wal_fetch,
        .xUnfetch = wal_unfetch,
    };
    sqlite3_vfs_register(&g_vfs, 1);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void db_vfs_register(void) { pthread_once(&g_once, setup); }

/*
 * db_vfs: a thin VFS over SQLite's default one that turns the many small
 * writes of a WAL commit into a few.
 *
 * SQLite appends a commit to the WAL frame by frame, each frame with two
 * writes (its 24-byte header, then the page): a commit of 40 pages costs 80
 * pwrite calls, and system calls are dear on this kind of machine. Here the
 * writes to a WAL file that continue the previous one are gathered in a
 * buffer, which goes out with one pwrite per 128 KiB (the most the unix
 * VFS writes at once):
 *   - when the page of the commit frame (a frame header whose "database
 *     size after commit" is not 0) is in: before that write returns, so
 *     before SQLite publishes the commit in the WAL index;
 *   - when a write does not continue the buffer (SQLite rewrites a frame of
 *     the same transaction in place, or writes the WAL header), when the
 *     buffer is full (DB_VFS_BUF), and before anything else touches the
 *     file (read, sync, truncate, size, lock, file control, close).
 * After a commit's frames are out, whatever else the transaction writes
 * (checksums SQLite rewrites after the commit frame) goes straight to the
 * file. When the connection lets go of the WAL write lock (seen on its
 * database file's xShmLock), whatever is still gathered belongs to a
 * transaction that did not commit (it spilled frames, then rolled back):
 * it is dropped, never written later over other connections' commits. A
 * WAL is gathered only once it is tied to its database file (by the WAL
 * name SQLite derives from the database's, sqlite3_filename_wal);
 * otherwise every write goes straight through.
 *
 * So what reaches the file, in which order, is SQLite's own, less frames no
 * reader can see. Every file is opened by the default VFS and reached
 * through the forwarders below. Registered once per process as the default
 * VFS (db_vfs_register).
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

typedef struct vfs_file {
    sqlite3_file base;   /* pMethods: g_methods */
    sqlite3_file *real;  /* the default VFS's file, right after this struct */
    bool wal;            /* a WAL: writes may be gathered */
    bool main_db;        /* a main database file: its xShmLock ends transactions */
    const char *wal_name; /* main db: the name its WAL will be opened with */
    struct vfs_file *partner; /* main db <-> its WAL, once both are open */
    struct vfs_file *next;    /* in g_unpaired (a main db whose WAL is not open) */
    char *buf;           /* gathered writes, NULL until the first */
    sqlite3_int64 buf_off; /* file offset of buf[0] */
    int buf_len;
    sqlite3_int64 commit_page; /* offset of the commit frame's page, -1: none */
    bool committed;      /* the commit's frames are out: write through until unlock */
} vfs_file_t;

static pthread_mutex_t g_pair_lock = PTHREAD_MUTEX_INITIALIZER;
static vfs_file_t *g_unpaired; /* main database files waiting for their WAL */

static sqlite3_vfs g_vfs;      /* ours: a copy of the default with xOpen replaced */
static sqlite3_vfs *g_parent;  /* the default VFS */
static sqlite3_io_methods g_methods;

static int flush(vfs_file_t *f)
{
    int rc = SQLITE_OK;
    for (int done = 0; done < f->buf_len && rc == SQLITE_OK; done += DB_VFS_PIECE) {
        int n = f->buf_len - done < DB_VFS_PIECE ? f->buf_len - done : DB_VFS_PIECE;
        rc = f->real->pMethods->xWrite(f->real, f->buf + done, n, f->buf_off + done);
    }
    f->buf_len = 0;
    return rc;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int file_write(sqlite3_file *pf, const void *data, int amt, sqlite3_int64 off)
{
    vfs_file_t *f = (vfs_file_t *)pf;
    if (f->buf_len > 0 && (off != f->buf_off + f->buf_len || f->buf_len + amt > DB_VFS_BUF)) {
        int rc = flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    /* not a paired WAL, the commit is out, the WAL header, or too big: as it is */
    if (!f->wal || !f->partner || f->committed || off < WAL_HEADER || amt > DB_VFS_PIECE ||
        (!f->buf && !(f->buf = malloc((size_t)DB_VFS_BUF)))) {
        int rc = flush(f);
        return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
    }
    if (f->buf_len == 0) f->buf_off = off;
    memcpy(f->buf + f->buf_len, data, (size_t)amt);
    f->buf_len += amt;
    /* a frame header of a commit: its page comes next, then the commit is out */
    if (amt == FRAME_HEADER && be32((const unsigned char *)data + 4) != 0) {
        f->commit_page = off + FRAME_HEADER;
    } else if (off == f->commit_page) {
        f->commit_page = -1;
        f->committed = true;
        return flush(f);
    }
    return SQLITE_OK;
}

/* The connection let go of the WAL write lock: its transaction is over.
 * What its WAL still holds gathered was never committed. */
static void transaction_over(vfs_file_t *db)
{
    vfs_file_t *w = db->partner;
    if (!w) return;
    w->buf_len = 0;
    w->commit_page = -1;
    w->committed = false;
}

static int file_close(sqlite3_file *pf)
{
    vfs_file_t *f = (vfs_file_t *)pf;
    pthread_mutex_lock(&g_pair_lock);
    for (vfs_file_t **pp = &g_unpaired; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (f->partner) f->partner->partner = NULL;
    f->partner = NULL;
    pthread_mutex_unlock(&g_pair_lock);
    int rc = flush(f);
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* The rest flush first, then forward. */
#define REAL(pf) (((vfs_file_t *)(pf))->real)
#define FLUSH_OR_RETURN(pf)                                                                    \
    do {                                                                                       \
        int frc_ = flush((vfs_file_t *)(pf));                                                  \
        if (frc_ != SQLITE_OK) return frc_;                                                    \
    } while (0)

static int file_read(sqlite3_file *pf, void *data, int amt, sqlite3_int64 off)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xRead(REAL(pf), data, amt, off);
}

static int file_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xTruncate(REAL(pf), size);
}

static int file_sync(sqlite3_file *pf, int flags)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xSync(REAL(pf), flags);
}

static int file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFileSize(REAL(pf), size);
}

static int file_lock(sqlite3_file *pf, int level)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xLock(REAL(pf), level);
}

static int file_unlock(sqlite3_file *pf, int level)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xUnlock(REAL(pf), level);
}

static int file_check_lock(sqlite3_file *pf, int *out)
{
    return REAL(pf)->pMethods->xCheckReservedLock(REAL(pf), out);
}

static int file_control(sqlite3_file *pf, int op, void *arg)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFileControl(REAL(pf), op, arg);
}

static int file_sector(sqlite3_file *pf) { return REAL(pf)->pMethods->xSectorSize(REAL(pf)); }

static int file_caps(sqlite3_file *pf)
{
    return REAL(pf)->pMethods->xDeviceCharacteristics(REAL(pf));
}

static int file_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **out)
{
    return REAL(pf)->pMethods->xShmMap(REAL(pf), pg, pgsz, extend, out);
}

static int file_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    vfs_file_t *f = (vfs_file_t *)pf;
    /* slot 0 is the WAL write lock */
    if ((flags & SQLITE_SHM_UNLOCK) && offset == 0 && n > 0) transaction_over(f);
    return REAL(pf)->pMethods->xShmLock(REAL(pf), offset, n, flags);
}

static void file_shm_barrier(sqlite3_file *pf) { REAL(pf)->pMethods->xShmBarrier(REAL(pf)); }

static int file_shm_unmap(sqlite3_file *pf, int del)
{
    return REAL(pf)->pMethods->xShmUnmap(REAL(pf), del);
}

static int file_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **out)
{
    FLUSH_OR_RETURN(pf);
    return REAL(pf)->pMethods->xFetch(REAL(pf), off, amt, out);
}

static int file_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    return REAL(pf)->pMethods->xUnfetch(REAL(pf), off, p);
}

static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                    int *out_flags)
{
    (void)vfs;
    vfs_file_t *f = (vfs_file_t *)pf;
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
     * struct, not the real one); only a WAL paired with its database file
     * is gathered */
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    pf->pMethods = &g_methods;
    pthread_mutex_lock(&g_pair_lock);
    if (f->main_db && name) {
        f->wal_name = sqlite3_filename_wal(name);
        f->next = g_unpaired;
        g_unpaired = f;
    } else if (f->wal && name) {
        for (vfs_file_t **pp = &g_unpaired; *pp; pp = &(*pp)->next) {
            if ((*pp)->wal_name == (const char *)name) {
                vfs_file_t *db = *pp;
                *pp = db->next;
                db->next = NULL;
                db->partner = f;
                f->partner = db;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_pair_lock);
    return SQLITE_OK;
}

static void setup(void)
{
    g_parent = sqlite3_vfs_find(NULL);
    if (!g_parent) return;
    g_vfs = *g_parent;
    g_vfs.zName = DB_VFS_NAME;
    g_vfs.szOsFile = (int)sizeof(vfs_file_t) + g_parent->szOsFile;
    g_vfs.xOpen = vfs_open;
    g_vfs.pNext = NULL;
    g_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = file_close,
        .xRead = file_read,
        .xWrite = file_write,
        .xTruncate = file_truncate,
        .xSync = file_sync,
        .xFileSize = file_size,
        .xLock = file_lock,
        .xUnlock = file_unlock,
        .xCheckReservedLock = file_check_lock,
        .xFileControl = file_control,
        .xSectorSize = file_sector,
        .xDeviceCharacteristics = file_caps,
        .xShmMap = file_shm_map,
        .xShmLock = file_shm_lock,
        .xShmBarrier = file_shm_barrier,
        .xShmUnmap = file_shm_unmap,
        .xFetch = file_fetch,
        .xUnfetch = file_unfetch,
    };
    sqlite3_vfs_register(&g_vfs, 1);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void db_vfs_register(void) { pthread_once(&g_once, setup); }

/*
 * mail_deliver: the two ways a formatted message leaves (see mail.h): an
 * .eml file in the spool directory, written so that it appears whole or
 * not at all, or an SMTP transaction through libcurl.
 */
#include "mail.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"
#include "log.h"

#define MAIL_SMTP_TIMEOUT_MS 30000L
#define MAIL_SMTP_CONNECT_MS 5000L

/* --- spool --------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* dir/<id>.eml and the temp name it is written under first (starting with
 * '.' and ending in .tmp: never taken for a mail). */
static int spool_names(const char *dir, const char *id, char path[PATH_MAX], char tmp[PATH_MAX])
{
    if (snprintf(path, PATH_MAX, "%s/%s.eml", dir, id) >= PATH_MAX ||
        snprintf(tmp, PATH_MAX, "%s/.%s.%ld.tmp", dir, id, (long)gettid()) >= PATH_MAX)
        return diag_set(DIAG_VALIDATION, "mail spool path too long");
    return 0;
}

/* o failed: the reason from the last diag. */
static void out_failed(mail_out_t *o)
{
    o->rc = -1;
    snprintf(o->why, sizeof(o->why), "%s", diag_last()->message);
}

/* A temp file of `o` written whole (not yet synced): its descriptor, or -1
 * with o failed. */
static int spool_temp(const char *dir, mail_out_t *o)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (spool_names(dir, o->id, path, tmp) < 0) {
        out_failed(o);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        diag_set(DIAG_UNAVAILABLE, "open %s: %s", tmp, strerror(errno));
        out_failed(o);
        return -1;
    }
    if (write_all(fd, o->msg, o->len) < 0) {
        diag_set(DIAG_UNAVAILABLE, "write %s: %s", tmp, strerror(errno));
        out_failed(o);
        close(fd);
        unlink(tmp);
        return -1;
    }
    return fd;
}

/* The temp file of `o` (fd open) is on disk: close it and give it its name. */
static void spool_publish(const char *dir, mail_out_t *o, int fd)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    spool_names(dir, o->id, path, tmp); /* fit when spool_temp made them */
    if (close(fd) < 0)
        diag_set(DIAG_UNAVAILABLE, "close %s: %s", tmp, strerror(errno));
    else if (rename(tmp, path) < 0)
        diag_set(DIAG_UNAVAILABLE, "rename to %s: %s", path, strerror(errno));
    else
        return; /* rc stays 1 until the directory is synced */
    out_failed(o);
    unlink(tmp);
}

int mail_spool_write_batch(const char *dir, mail_out_t *out, int n)
{
    if (n < 0 || n > MAIL_BATCH_MAX) return diag_set(DIAG_INTERNAL, "mail batch of %d", n);
    int fds[MAIL_BATCH_MAX];
    for (int i = 0; i < n; i++) {
        out[i].rc = 1;
        out[i].unreachable = false;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        diag_set(DIAG_UNAVAILABLE, "mkdir %s: %s", dir, strerror(errno));
        for (int i = 0; i < n; i++) out_failed(&out[i]);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        fds[i] = spool_temp(dir, &out[i]);
        /* start writing it out now, so the device takes the batch's pages
         * together and each fdatasync below mostly waits */
        if (fds[i] >= 0) (void)sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0) continue;
        char path[PATH_MAX], tmp[PATH_MAX];
        spool_names(dir, out[i].id, path, tmp); /* fit when spool_temp made them */
        if (fdatasync(fds[i]) == 0) {
            spool_publish(dir, &out[i], fds[i]);
            continue;
        }
        diag_set(DIAG_UNAVAILABLE, "fdatasync %s: %s", tmp, strerror(errno));
        out_failed(&out[i]);
        close(fds[i]);
        unlink(tmp);
    }
    /* the renames are on disk with the directory; if that sync fails, a
     * later delivery writes the same bytes again */
    int renamed = 0, delivered = 0;
    for (int i = 0; i < n; i++) renamed += out[i].rc == 1;
    bool dir_synced = renamed == 0 || fsync_dir(dir) == 0;
    if (!dir_synced) diag_set(DIAG_UNAVAILABLE, "fsync %s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        if (out[i].rc != 1) continue;
        if (dir_synced) {
            out[i].rc = 0;
            delivered++;
        } else {
            out_failed(&out[i]);
        }
    }
    return delivered;
}

int mail_spool_write(const char *dir, const char *id, const char *msg, size_t len)
{
    mail_out_t o = {.id = id, .msg = msg, .len = len};
    if (mail_spool_write_batch(dir, &o, 1) == 1) return 0;
    return diag_set(DIAG_UNAVAILABLE, "%s", o.why);
}

int mail_spool_sweep(const char *dir, int64_t older_than_ms)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : diag_set(DIAG_UNAVAILABLE, "open %s: %s", dir, strerror(errno));
    int64_t cutoff = clock_now_ms() - older_than_ms;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != '.' || len < 5 || strcmp(e->d_name + len - 4, ".tmp") != 0) continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        if ((int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000 >= cutoff) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            log_info("mail: removed %s/%s, left by a delivery that was interrupted", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* --- SMTP ---------------------------------------------------------------- */

typedef struct upload {
    const char *p;
    size_t left;
    const atomic_int *stop;
} upload_t;

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    upload_t *u = userdata;
    size_t n = size * nitems;
    if (n > u->left) n = u->left;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

/* Progress callback: a non-zero return aborts the transfer (on stop). */
static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const upload_t *u = clientp;
    return u->stop && atomic_load(u->stop) ? 1 : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One message over the session's connection (libcurl keeps it open
 * between transfers of one handle): 0, or -1 with o failed (unreachable
 * when no server reply came back). */
static int smtp_one(CURL *curl, const char *url, mail_out_t *o, const atomic_int *stop)
{
    struct curl_slist *rcpt = curl_slist_append(NULL, o->to);
    if (!rcpt) {
        diag_set(DIAG_INTERNAL, "out of memory");
        out_failed(o);
        return -1;
    }
    upload_t u = {o->msg, o->len, stop};
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->len);
    curl_easy_setopt(curl, CURLOPT_READDATA, &u);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &u);
    CURLcode res = curl_easy_perform(curl);
    curl_slist_free_all(rcpt);
    if (res == CURLE_OK) {
        o->rc = 0;
        return 0;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    diag_set(DIAG_UNAVAILABLE, "SMTP %s: %s (reply %ld)", url, curl_easy_strerror(res), code);
    out_failed(o);
    o->unreachable = code == 0;
    return -1;
}

int mail_smtp_send_batch(const char *url, const char *from_addr, mail_out_t *out, int n,
                         const atomic_int *stop)
{
    for (int i = 0; i < n; i++) {
        out[i].rc = 1;
        out[i].unreachable = false;
    }
    pthread_once(&curl_once, curl_init);
    CURL *curl = curl_easy_init();
    if (!curl) return diag_set(DIAG_INTERNAL, "curl_easy_init failed");
    char from[MAIL_ADDR_MAX + 3];
    snprintf(from, sizeof(from), "<%s>", from_addr);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, MAIL_SMTP_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, MAIL_SMTP_CONNECT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    /* an unreachable server ends the batch: the rest stay untried (rc 1),
     * as each of them would wait for the same dead server */
    int delivered = 0;
    for (int i = 0; i < n && !(i > 0 && out[i - 1].unreachable) && !(stop && atomic_load(stop)); i++)
        if (smtp_one(curl, url, &out[i], stop) == 0) delivered++;
    curl_easy_cleanup(curl);
    return delivered;
}

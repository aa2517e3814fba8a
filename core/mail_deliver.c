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

int mail_spool_write(const char *dir, const char *id, const char *msg, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return diag_set(DIAG_UNAVAILABLE, "mkdir %s: %s", dir, strerror(errno));
    /* the temp name starts with '.' and ends in .tmp: never taken for a mail */
    if (snprintf(path, sizeof(path), "%s/%s.eml", dir, id) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, id, (long)gettid()) >= (int)sizeof(tmp))
        return diag_set(DIAG_VALIDATION, "mail spool path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return diag_set(DIAG_UNAVAILABLE, "open %s: %s", tmp, strerror(errno));
    int rc = -1;
    if (write_all(fd, msg, len) < 0 || fsync(fd) < 0) {
        diag_set(DIAG_UNAVAILABLE, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        diag_set(DIAG_UNAVAILABLE, "close %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        diag_set(DIAG_UNAVAILABLE, "rename to %s: %s", path, strerror(errno));
        goto out;
    }
    if (fsync_dir(dir) < 0) {
        diag_set(DIAG_UNAVAILABLE, "fsync %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc < 0) unlink(tmp);
    return rc;
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

int mail_smtp_send(const char *url, const char *from_addr, const char *to, const char *msg,
                   size_t len, const atomic_int *stop)
{
    pthread_once(&curl_once, curl_init);
    CURL *curl = curl_easy_init();
    if (!curl) return diag_set(DIAG_INTERNAL, "curl_easy_init failed");
    char from[MAIL_ADDR_MAX + 3];
    snprintf(from, sizeof(from), "<%s>", from_addr);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    upload_t u = {msg, len, stop};
    int rc = -1;
    if (!rcpt) {
        diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &u);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, MAIL_SMTP_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, MAIL_SMTP_CONNECT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode res = curl_easy_perform(curl);
    if (res != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        diag_set(DIAG_UNAVAILABLE, "SMTP %s: %s (reply %ld)", url, curl_easy_strerror(res), code);
        goto out;
    }
    rc = 0;
out:
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return rc;
}

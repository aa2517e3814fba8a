/*
 * http_static: the dashboards' files from the web directory (see
 * http_internal.h). A request path is decoded, checked for anything that
 * could leave the directory (.., dot segments, backslashes, NUL, empty
 * segments), and only files with a known extension are served.
 */
#include "http_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_PATH_MAX 512

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".woff2", "font/woff2"},
};

/* The content type for the extension of `name`, NULL when not served. */
static const char *type_of(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (!dot) return NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return NULL;
}

/* true when the decoded path stays inside the directory: it starts with
 * '/', has no backslash, and no segment is empty or starts with '.'. */
static bool safe_path(const char *path)
{
    if (path[0] != '/' || strchr(path, '\\')) return false;
    for (const char *p = path + 1;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || p[0] == '.') return false;
        if (!slash) return true;
        p = slash + 1;
    }
}

/* Open web_dir/rel if it is a regular file. */
static int open_file(const char *web_dir, const char *rel, int *fd, size_t *size)
{
    char full[PATH_MAX];
    int n = snprintf(full, sizeof(full), "%s/%s", web_dir, rel);
    if (n < 0 || (size_t)n >= sizeof(full)) return -1;
    int f = open(full, O_RDONLY | O_CLOEXEC);
    if (f < 0) return -1;
    struct stat st;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return -1;
    }
    *fd = f;
    *size = (size_t)st.st_size;
    return 0;
}

int http_static_open(const char *web_dir, const char *path, int *fd, size_t *size,
                     const char **content_type)
{
    size_t len = strlen(path);
    char dec[STATIC_PATH_MAX];
    if (!web_dir || len >= sizeof(dec)) return -1;
    if (http_pct_decode(path, len, dec) < 0) return -1;
    if (strcmp(dec, "/") == 0) {
        *content_type = type_of("index.html");
        return open_file(web_dir, "index.html", fd, size);
    }
    if (!safe_path(dec)) return -1;
    const char *rel = dec + 1;
    if (!strchr(rel, '/') && !strchr(rel, '.')) {
        char html[STATIC_PATH_MAX + 8];
        snprintf(html, sizeof(html), "%s.html", rel);
        if (open_file(web_dir, html, fd, size) == 0) {
            *content_type = type_of(html);
            return 0;
        }
    }
    const char *type = type_of(rel);
    if (!type) return -1;
    *content_type = type;
    return open_file(web_dir, rel, fd, size);
}

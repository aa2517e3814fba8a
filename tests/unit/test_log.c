/*
 * log: each line on stderr is one JSON object with time, level, service,
 * trace_id, message and src; hostile text is escaped; levels filter.
 */
#include <stdlib.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "t.h"
#include <cjson/cJSON.h>

/* Run fn with stderr redirected into a file; return what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/ates-log-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    pread(fd, buf, (size_t)len, 0);
    close(fd);
    unlink(path);
    return buf;
}

static void emit_lines(void)
{
    log_set_level(LOG_INFO);
    log_set_service("tracker");
    log_set_trace("trace-1");
    log_info("hello \"popug\"\n\ttab %d", 42);
    log_debug("not shown at info");
    log_set_service(NULL);
    log_set_trace(NULL);
    log_warn("plain");
}

int main(void)
{
    char *out = capture(emit_lines);
    char *save = NULL;
    char *line = strtok_r(out, "\n", &save);
    cJSON *first = cJSON_Parse(line ? line : "");
    T_CHECK(first != NULL);
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "level")), "info");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "service")), "tracker");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "trace_id")), "trace-1");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "message")), "hello \"popug\"\n\ttab 42");
    const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(first, "src"));
    T_CHECK(src && strncmp(src, "test_log.c:", 11) == 0);
    int64_t ms = 0;
    T_EQ_INT(clock_parse_rfc3339(cJSON_GetStringValue(cJSON_GetObjectItem(first, "time")), &ms), 0);
    T_CHECK(ms > 0);
    cJSON_Delete(first);

    line = strtok_r(NULL, "\n", &save);
    cJSON *second = cJSON_Parse(line ? line : "");
    T_CHECK(second != NULL);
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(second, "level")), "warn");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(second, "service")), "");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(second, "message")), "plain");
    cJSON_Delete(second);
    T_CHECK(strtok_r(NULL, "\n", &save) == NULL); /* the debug line was filtered */

    log_level_t lvl;
    T_EQ_INT(log_level_parse("debug", &lvl), 0);
    T_EQ_INT(lvl, LOG_DEBUG);
    T_EQ_INT(log_level_parse("verbose", &lvl), -1);
    free(out);
    return t_done();
}

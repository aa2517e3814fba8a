/*
 * test_mail: the message formatter (headers, CRLF, RFC 2047 subject,
 * quoted-printable body, header injection refused), the spool writer, and
 * the mail outbox with its worker on a real SQLite file: enqueue inside a
 * transaction, dedupe of queued and sent ids, delivery to the spool after
 * commit, nothing on rollback, and retries while SMTP is unreachable.
 */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/db.h"
#include "core/diag.h"
#include "core/mail.h"
#include "t.h"

static char g_dir[512];

#define FROM "aTES <noreply@uberpopug.inc>"

/* The message for m, or NULL; frees nothing. */
static char *fmt(const mail_msg_t *m, int64_t date)
{
    char *out = NULL;
    size_t len = 0;
    if (mail_format(&out, &len, m, FROM, date) < 0) return NULL;
    if (len != strlen(out)) {
        free(out);
        return NULL;
    }
    return out;
}

/* Every '\n' is preceded by '\r' and every '\r' followed by '\n'. */
static int crlf_only(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\n' && (p == s || p[-1] != '\r')) return 0;
        if (*p == '\r' && p[1] != '\n') return 0;
    }
    return 1;
}

/* The longest line (without CRLF) from `from` on. */
static size_t longest_line(const char *from)
{
    size_t best = 0, cur = 0;
    for (const char *p = from; *p; p++) {
        if (*p == '\r') continue;
        if (*p == '\n') {
            best = cur > best ? cur : best;
            cur = 0;
        } else {
            cur++;
        }
    }
    return cur > best ? cur : best;
}

static void test_date(void)
{
    char d[MAIL_DATE_LEN];
    mail_date(0, d);
    T_EQ_STR(d, "Thu, 01 Jan 1970 00:00:00 +0000");
    int64_t ms = 0;
    T_EQ_INT(clock_parse_rfc3339("2026-11-24T10:05:09.999Z", &ms), 0);
    mail_date(ms, d);
    T_EQ_STR(d, "Tue, 24 Nov 2026 10:05:09 +0000");
}

static void test_format_plain(void)
{
    int64_t ms = 0;
    clock_parse_rfc3339("2026-11-24T10:00:00Z", &ms);
    mail_msg_t m = {"notify-abc", "popug@uberpopug.inc", "New task", "Hello\nline two\n"};
    char *s = fmt(&m, ms);
    T_CHECK(s != NULL);
    if (!s) return;
    T_EQ_STR(s, "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
                "From: aTES <noreply@uberpopug.inc>\r\n"
                "To: popug@uberpopug.inc\r\n"
                "Subject: New task\r\n"
                "Message-ID: <notify-abc@ates>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n"
                "\r\n"
                "Hello\r\n"
                "line two\r\n");
    free(s);

    /* same fields, same date: the same bytes (a redelivery writes the same file) */
    char *a = fmt(&m, ms), *b = fmt(&m, ms);
    T_CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
}

static void test_format_body(void)
{
    /* CR, LF and CRLF all become CRLF; no trailing newline gets one */
    mail_msg_t m = {"x", "a@b.c", "s", "one\rtwo\r\nthree\nfour"};
    char *s = fmt(&m, 0);
    T_CHECK(s && strstr(s, "\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n") && crlf_only(s));
    free(s);

    /* non-ASCII, '=', trailing space, a leading dot */
    m.text = "Привет = 1 \n.hidden\n";
    s = fmt(&m, 0);
    T_CHECK(s && strstr(s, "\r\n\r\n=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82 =3D 1=20\r\n=2Ehidden\r\n"));
    free(s);

    /* a long line is soft-broken at <= 76 characters and still decodes */
    char longtext[400];
    memset(longtext, 'a', 300);
    longtext[300] = '\0';
    m.text = longtext;
    s = fmt(&m, 0);
    T_CHECK(s != NULL);
    if (s) {
        const char *body = strstr(s, "\r\n\r\n") + 4;
        T_CHECK(longest_line(body) <= 76);
        T_CHECK(strstr(body, "=\r\n") != NULL);
        size_t n = 0;
        for (const char *p = body; *p; p++) n += *p == 'a';
        T_EQ_INT(n, 300);
        T_CHECK(crlf_only(s));
    }
    free(s);

    /* an empty body is fine */
    m.text = "";
    s = fmt(&m, 0);
    T_CHECK(s && strlen(strstr(s, "\r\n\r\n")) == 4);
    free(s);
}

static void test_format_subject(void)
{
    mail_msg_t m = {"x", "a@b.c", "Задача: «Покормить попугая»", "t"};
    char *s = fmt(&m, 0);
    T_CHECK(s && strstr(s, "\r\nSubject: =?UTF-8?B?"));
    T_CHECK(s && !strstr(s, "Задача")); /* no raw 8-bit in the headers */
    if (s) {
        char *head_end = strstr(s, "\r\n\r\n");
        *head_end = '\0';
        T_CHECK(longest_line(s) <= 78);
        T_CHECK(crlf_only(s));
    }
    free(s);

    /* "=?" in a plain subject is encoded, so it cannot be mistaken for a word */
    m.subject = "=?UTF-8?B?SGk=?=";
    s = fmt(&m, 0);
    T_CHECK(s && strstr(s, "Subject: =?UTF-8?B?PT9VVEYtOD9CP1NHaz0/PQ==?=\r\n"));
    free(s);

    /* long ASCII: folded encoded words, every header line short */
    char longsub[300];
    memset(longsub, 'x', 200);
    longsub[200] = '\0';
    m.subject = longsub;
    s = fmt(&m, 0);
    T_CHECK(s && strstr(s, "?=\r\n =?UTF-8?B?"));
    if (s) {
        *strstr(s, "\r\n\r\n") = '\0';
        T_CHECK(longest_line(s) <= 78);
    }
    free(s);

    /* a 4-byte character is never split across words */
    char emoji[200] = "";
    for (int i = 0; i < 30; i++) strcat(emoji, "\xF0\x9F\x90\xA6"); /* bird */
    m.subject = emoji;
    s = fmt(&m, 0);
    T_CHECK(s != NULL);
    free(s);
}

static void test_validation(void)
{
    struct {
        mail_msg_t m;
        const char *why;
    } bad[] = {
        {{"x", "a@b.c", "Hi\r\nBcc: evil@x.y", "t"}, "CRLF in subject"},
        {{"x", "a@b.c", "Hi\nBcc: evil@x.y", "t"}, "LF in subject"},
        {{"x", "a@b.c", "Hi\r", "t"}, "CR in subject"},
        {{"x", "a@b.c", "", "t"}, "empty subject"},
        {{"x", "a@b.c", NULL, "t"}, "no subject"},
        {{"x", "a@b.c\r\nBcc: e@x.y", "s", "t"}, "CRLF in to"},
        {{"x", "a@b.c, d@e.f", "s", "t"}, "two addresses"},
        {{"x", "Name <a@b.c>", "s", "t"}, "a display name in to"},
        {{"x", "", "s", "t"}, "empty to"},
        {{"x", "nobody", "s", "t"}, "no @"},
        {{"x", "a@b@c", "s", "t"}, "two @"},
        {{"x", "@b.c", "s", "t"}, "no local part"},
        {{"", "a@b.c", "s", "t"}, "empty id"},
        {{"../etc/passwd", "a@b.c", "s", "t"}, "path in id"},
        {{"a/b", "a@b.c", "s", "t"}, "slash in id"},
        {{"a@b", "a@b.c", "s", "t"}, "@ in id"},
        {{".hidden", "a@b.c", "s", "t"}, "leading dot in id"},
        {{"x", "a@b.c", "s", NULL}, "no text"},
        {{"x", "a@b.c", "bad \xC3\x28 utf8", "t"}, "bad UTF-8 subject"},
        {{"x", "a@b.c", "s", "bad \xED\xA0\x80 surrogate"}, "surrogate in text"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        diag_clear();
        int rc = mail_check(&bad[i].m);
        if (rc != -1 || diag_last()->kind != DIAG_VALIDATION)
            fprintf(stderr, "accepted: %s\n", bad[i].why);
        T_EQ_INT(rc, -1);
        T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
        char *out = (char *)1;
        size_t len = 1;
        T_EQ_INT(mail_format(&out, &len, &bad[i].m, FROM, 0), -1);
        T_CHECK(out == NULL);
    }
    mail_msg_t ok = {"payout-2026-11-24-0190a0b2-7c1d-7e2f-8a9b-0c1d2e3f4a5b", "p.o+tag@sub.example.org",
                     "Payout\tof the day", "Ünïcödé body\n"};
    T_EQ_INT(mail_check(&ok), 0);

    /* the From value */
    T_EQ_INT(mail_check_from(FROM), 0);
    T_EQ_INT(mail_check_from("noreply@uberpopug.inc"), 0);
    T_EQ_INT(mail_check_from("aTES\r\nBcc: x@y.z <a@b.c>"), -1);
    T_EQ_INT(mail_check_from("aTES <a@b.c"), -1);
    T_EQ_INT(mail_check_from("Doe, John <a@b.c>"), -1);
    T_EQ_INT(mail_check_from(""), -1);
    char addr[MAIL_ADDR_MAX + 1];
    T_EQ_INT(mail_from_addr(FROM, addr), 0);
    T_EQ_STR(addr, "noreply@uberpopug.inc");
    char *out = NULL;
    size_t len = 0;
    T_EQ_INT(mail_format(&out, &len, &ok, "x\ny <a@b.c>", 0), -1);
    T_CHECK(out == NULL);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int count_all(const char *dir) /* including dot files (temp files) */
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static void test_spool(void)
{
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/spool", g_dir);
    T_EQ_INT(mail_spool_write(dir, "m1", "first\r\n", 7), 0);
    snprintf(path, sizeof(path), "%s/m1.eml", dir);
    T_EQ_STR(read_file(path), "first\r\n");
    struct stat st;
    T_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* a second delivery replaces the file whole: still one file */
    T_EQ_INT(mail_spool_write(dir, "m1", "second\r\n", 8), 0);
    T_EQ_STR(read_file(path), "second\r\n");
    T_EQ_INT(count_all(dir), 1);
    /* an unwritable place is an error, not a crash */
    T_EQ_INT(mail_spool_write("/proc/nonexistent/dir", "m1", "x", 1), -1);
    T_EQ_INT(diag_last()->kind, DIAG_UNAVAILABLE);

    /* the sweep removes only temp files a crash left long ago */
    char stale[700], fresh[700];
    snprintf(stale, sizeof(stale), "%s/.m2.123.tmp", dir);
    snprintf(fresh, sizeof(fresh), "%s/.m3.456.tmp", dir);
    FILE *f = fopen(stale, "w");
    T_CHECK(f && fclose(f) == 0);
    f = fopen(fresh, "w");
    T_CHECK(f && fclose(f) == 0);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 3600}, {.tv_sec = time(NULL) - 3600}};
    T_CHECK(utimensat(AT_FDCWD, stale, old, 0) == 0);
    T_EQ_INT(mail_spool_sweep(dir, MAIL_TEMP_STALE_MS), 1);
    T_CHECK(access(stale, F_OK) != 0);
    T_CHECK(access(fresh, F_OK) == 0);
    T_EQ_STR(read_file(path), "second\r\n"); /* mails are never touched */
    struct timespec minutes_ago[2] = {{.tv_sec = time(NULL) - 120}, {.tv_sec = time(NULL) - 120}};
    T_CHECK(utimensat(AT_FDCWD, fresh, minutes_ago, 0) == 0);
    T_EQ_INT(mail_spool_sweep(dir, 60000), 1); /* the bound is the caller's */
    T_EQ_INT(count_all(dir), 1);
    T_EQ_INT(mail_spool_sweep("/nonexistent-spool-dir", 60000), 0);
}

/* A batch with one message that cannot take its place (a directory holds
 * its name): the others are delivered, that one fails alone, and no temp
 * file is left. */
static void test_spool_batch(void)
{
    char dir[600], blocker[700];
    snprintf(dir, sizeof(dir), "%s/batch", g_dir);
    T_EQ_INT(mkdir(dir, 0700), 0);
    snprintf(blocker, sizeof(blocker), "%s/b2.eml", dir);
    T_EQ_INT(mkdir(blocker, 0700), 0);
    mail_out_t out[3] = {{.id = "b1", .msg = "one\r\n", .len = 5},
                         {.id = "b2", .msg = "two\r\n", .len = 5},
                         {.id = "b3", .msg = "three\r\n", .len = 7}};
    T_EQ_INT(mail_spool_write_batch(dir, out, 3), 2);
    T_EQ_INT(out[0].rc, 0);
    T_EQ_INT(out[1].rc, -1);
    T_CHECK(strstr(out[1].why, "rename") != NULL);
    T_EQ_INT(out[2].rc, 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/b3.eml", dir);
    T_EQ_STR(read_file(path), "three\r\n");
    T_EQ_INT(count_all(dir), 3); /* b1.eml, b3.eml and the blocking directory */
    /* more than a batch holds is refused, nothing written */
    mail_out_t many[MAIL_BATCH_MAX + 1];
    memset(many, 0, sizeof(many));
    T_EQ_INT(mail_spool_write_batch(dir, many, MAIL_BATCH_MAX + 1), -1);
    T_EQ_INT(count_all(dir), 3);
}

static int64_t qint(db_t *db, const char *sql, const char *arg)
{
    db_conn_t *c = db_conn(db);
    sqlite3_stmt *st = c ? db_stmt(c, sql) : NULL;
    if (!st || (arg && db_bind_text(st, 1, arg) < 0)) return -999;
    int64_t v = db_step(c, st) == 1 ? sqlite3_column_int64(st, 0) : -998;
    sqlite3_reset(st);
    return v;
}

static int enqueue_tx(db_t *db, const mail_msg_t *m, int commit)
{
    db_conn_t *c = db_conn(db);
    if (db_begin(c) < 0) return -1;
    int rc = mail_enqueue(c, m);
    if (rc == 0 && commit) return db_commit(c);
    db_rollback(c);
    return rc;
}

/* Poll (bounded) until pred is true. */
static int eventually(int (*pred)(void *), void *arg)
{
    for (int i = 0; i < 2000; i++) {
        if (pred(arg)) return 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int outbox_empty(void *db) { return mail_pending(db) == 0; }
static int attempted_twice(void *db)
{
    return qint(db, "SELECT coalesce(max(attempts), 0) >= 2 FROM mail_outbox", NULL) == 1;
}

static void test_queue_spool(void)
{
    char dbpath[600], data[600], spool[700];
    snprintf(dbpath, sizeof(dbpath), "%s/svc.db", g_dir);
    snprintf(data, sizeof(data), "%s/data", g_dir);
    snprintf(spool, sizeof(spool), "%s/mail", data);
    mkdir(data, 0700);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "svc", dbpath, db_core_migrations, NULL), 0);
    if (!db) return;

    mail_msg_t m = {"notify-1", "popug@uberpopug.inc", "Привет", "Body\n"};
    /* outside a transaction: refused */
    T_EQ_INT(mail_enqueue(db_conn(db), &m), -1);
    /* a bad mail: validation, nothing queued */
    mail_msg_t bad = {"notify-bad", "popug@uberpopug.inc", "a\r\nBcc: x@y.z", "t"};
    diag_clear();
    T_EQ_INT(enqueue_tx(db, &bad, 1), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    /* rolled back: nothing queued */
    T_EQ_INT(enqueue_tx(db, &m, 0), 0);
    T_EQ_INT(mail_pending(db), 0);
    /* committed, twice: one row */
    T_EQ_INT(enqueue_tx(db, &m, 1), 0);
    T_EQ_INT(enqueue_tx(db, &m, 1), 0);
    T_EQ_INT(mail_pending(db), 1);

    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data);
    snprintf(cfg.mail_from, sizeof(cfg.mail_from), "%s", FROM);
    T_EQ_INT(mail_start(db, &cfg), 0);
    T_CHECK(eventually(outbox_empty, db));
    T_EQ_INT(count_files(spool), 1);
    char path[800];
    snprintf(path, sizeof(path), "%s/notify-1.eml", spool);
    const char *eml = read_file(path);
    T_CHECK(eml && strstr(eml, "Message-ID: <notify-1@ates>\r\n") && strstr(eml, "To: popug@uberpopug.inc\r\n"));
    T_EQ_INT(qint(db, "SELECT count(*) FROM mail_sent WHERE id = ?1", "notify-1"), 1);

    /* sent already: a new enqueue of the id is ignored */
    unlink(path);
    T_EQ_INT(enqueue_tx(db, &m, 1), 0);
    T_EQ_INT(mail_pending(db), 0);

    /* a commit wakes the worker: more mail, each delivered once */
    mail_msg_t m2 = {"notify-2", "b@uberpopug.inc", "Second", "x"};
    mail_msg_t m3 = {"notify-3", "c@uberpopug.inc", "Third", "y"};
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(mail_enqueue(c, &m2), 0);
    T_EQ_INT(mail_enqueue(c, &m3), 0);
    T_EQ_INT(db_commit(c), 0);
    T_CHECK(eventually(outbox_empty, db));
    T_EQ_INT(count_files(spool), 2);
    T_EQ_INT(qint(db, "SELECT count(*) FROM mail_sent", NULL), 3);

    /* a crash after delivery, before the delete committed: the row is
     * delivered again into the same single file, byte for byte */
    mail_stop_all();
    mail_msg_t m4 = {"notify-4", "d@uberpopug.inc", "Fourth", "z\n.dot\n"};
    T_EQ_INT(enqueue_tx(db, &m4, 1), 0);
    int64_t created = qint(db, "SELECT created_at FROM mail_outbox WHERE id = ?1", "notify-4");
    char *first = NULL;
    size_t first_len = 0;
    T_EQ_INT(mail_format(&first, &first_len, &m4, FROM, created), 0);
    T_EQ_INT(first ? mail_spool_write(spool, "notify-4", first, first_len) : -1, 0);
    T_EQ_INT(mail_start(db, &cfg), 0); /* the restart */
    T_CHECK(eventually(outbox_empty, db));
    snprintf(path, sizeof(path), "%s/notify-4.eml", spool);
    const char *again = read_file(path);
    T_CHECK(first && again && strcmp(first, again) == 0);
    free(first);
    T_EQ_INT(count_files(spool), 3);
    T_EQ_INT(count_all(spool), 3); /* no temp file left */

    /* no worker: a CLI-like process delivers what is due itself */
    mail_stop_all();
    mail_msg_t m5 = {"notify-5", "e@uberpopug.inc", "Fifth", "w"};
    T_EQ_INT(enqueue_tx(db, &m5, 1), 0);
    T_EQ_INT(mail_pending(db), 1);
    T_EQ_INT(mail_deliver_due(db, &cfg), 1);
    T_EQ_INT(mail_pending(db), 0);
    T_EQ_INT(count_files(spool), 4);
    T_EQ_INT(mail_deliver_due(db, &cfg), 0);

    /* more than two batches in one go, one of them unable to take its
     * place: all tried once, the others each delivered once */
    char blocker[800];
    snprintf(blocker, sizeof(blocker), "%s/many-77.eml", spool);
    T_EQ_INT(mkdir(blocker, 0700), 0);
    int many = 2 * MAIL_BATCH_MAX + 9;
    T_EQ_INT(db_begin(c), 0);
    for (int i = 0; i < many; i++) {
        char id[32], to[64];
        snprintf(id, sizeof(id), "many-%d", i);
        snprintf(to, sizeof(to), "p%d@uberpopug.inc", i);
        mail_msg_t mi = {id, to, "Payout", "x"};
        T_EQ_INT(mail_enqueue(c, &mi), 0);
    }
    T_EQ_INT(db_commit(c), 0);
    T_EQ_INT(mail_deliver_due(db, &cfg), many);
    T_EQ_INT(count_files(spool), 4 + many); /* the blocker counts as one */
    T_EQ_INT(count_all(spool), 4 + many);   /* no temp file */
    T_EQ_INT(qint(db, "SELECT count(*) FROM mail_sent WHERE id LIKE 'many-%'", NULL), many - 1);
    T_EQ_INT(qint(db, "SELECT attempts FROM mail_outbox WHERE id = ?1", "many-77"), 1);
    T_EQ_INT(qint(db, "SELECT last_error LIKE '%rename%' FROM mail_outbox", NULL), 1);
    snprintf(path, sizeof(path), "%s/many-130.eml", spool);
    eml = read_file(path);
    T_CHECK(eml && strstr(eml, "To: p130@uberpopug.inc\r\n"));
    mail_stop_all();
    db_close(db);
}

/* --- a small SMTP server, one connection at a time -------------------- */

typedef struct smtp_srv {
    int fd, port;
    int connections, accepted, refused;
    char refuse_rcpt[64]; /* RCPT TO this address gets 550 */
    char last_rcpt[64];
    pthread_t thread;
} smtp_srv_t;

static int srv_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r <= 0) return -1;
        if (buf[n++] == '\n') break;
    }
    buf[n] = '\0';
    return (int)n;
}

static void srv_say(int fd, const char *s) { (void)!send(fd, s, strlen(s), MSG_NOSIGNAL); }

static void *srv_main(void *arg)
{
    smtp_srv_t *v = arg;
    for (;;) {
        int c = accept(v->fd, NULL, NULL);
        if (c < 0) return NULL; /* the listening socket was shut down */
        v->connections++;
        char line[1024];
        bool refused = false;
        srv_say(c, "220 test ESMTP\r\n");
        while (srv_line(c, line, sizeof(line)) > 0) {
            if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
                srv_say(c, "250 test\r\n");
            } else if (strncasecmp(line, "MAIL", 4) == 0) {
                refused = false;
                srv_say(c, "250 OK\r\n");
            } else if (strncasecmp(line, "RCPT", 4) == 0) {
                const char *lt = strchr(line, '<'), *gt = lt ? strchr(lt, '>') : NULL;
                snprintf(v->last_rcpt, sizeof(v->last_rcpt), "%.*s", lt && gt ? (int)(gt - lt - 1) : 0,
                         lt ? lt + 1 : "");
                refused = strcmp(v->last_rcpt, v->refuse_rcpt) == 0;
                if (refused) v->refused++;
                srv_say(c, refused ? "550 no such popug\r\n" : "250 OK\r\n");
            } else if (strncasecmp(line, "DATA", 4) == 0) {
                srv_say(c, "354 go on\r\n");
                while (srv_line(c, line, sizeof(line)) > 0 && strcmp(line, ".\r\n") != 0) {}
                v->accepted++;
                srv_say(c, "250 queued\r\n");
            } else if (strncasecmp(line, "QUIT", 4) == 0) {
                srv_say(c, "221 bye\r\n");
                break;
            } else {
                srv_say(c, "250 OK\r\n"); /* RSET, NOOP */
            }
        }
        close(c);
    }
}

static int srv_start(smtp_srv_t *v)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    v->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (v->fd < 0 || bind(v->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(v->fd, 8) != 0 ||
        getsockname(v->fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    v->port = ntohs(a.sin_port);
    return pthread_create(&v->thread, NULL, srv_main, v) == 0 ? 0 : -1;
}

static void srv_stop(smtp_srv_t *v)
{
    shutdown(v->fd, SHUT_RDWR);
    pthread_join(v->thread, NULL);
    close(v->fd);
}

/* Queue mails smtp-<first>.. in one transaction; the one at `refused`
 * goes to the address the server refuses. */
static void enqueue_smtp(db_t *db, int first, int n, int refused)
{
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_begin(c), 0);
    for (int i = first; i < first + n; i++) {
        char id[32], to[64];
        snprintf(id, sizeof(id), "smtp-%d", i);
        snprintf(to, sizeof(to), i == refused ? "nobody@uberpopug.inc" : "p%d@uberpopug.inc", i);
        mail_msg_t m = {id, to, "Payout", "x"};
        T_EQ_INT(mail_enqueue(c, &m), 0);
    }
    T_EQ_INT(db_commit(c), 0);
}

/* Mails due together go over one SMTP connection, each its own
 * transaction; a recipient the server refuses fails alone. */
static void test_queue_smtp_batch(void)
{
    smtp_srv_t v = {.refuse_rcpt = "nobody@uberpopug.inc"};
    T_EQ_INT(srv_start(&v), 0);
    char dbpath[600];
    snprintf(dbpath, sizeof(dbpath), "%s/smtpb.db", g_dir);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "smtpb", dbpath, db_core_migrations, NULL), 0);
    if (!db) return;
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", g_dir);
    snprintf(cfg.smtp_url, sizeof(cfg.smtp_url), "smtp://127.0.0.1:%d", v.port);
    enqueue_smtp(db, 0, 6, -1);
    T_EQ_INT(mail_deliver_due(db, &cfg), 6);
    T_EQ_INT(v.accepted, 6);
    T_EQ_INT(v.connections, 1);
    /* libcurl drops the connection after a refusal; the rest still go */
    enqueue_smtp(db, 6, 5, 8);
    T_EQ_INT(mail_deliver_due(db, &cfg), 5);
    T_EQ_INT(v.accepted, 10);
    T_EQ_INT(v.refused, 1);
    T_EQ_INT(mail_pending(db), 1);
    T_EQ_INT(qint(db, "SELECT attempts FROM mail_outbox WHERE id = ?1", "smtp-8"), 1);
    T_EQ_INT(qint(db, "SELECT count(*) FROM mail_sent", NULL), 10);
    srv_stop(&v);
    db_close(db);
}

static void test_queue_smtp_down(void)
{
    char dbpath[600];
    snprintf(dbpath, sizeof(dbpath), "%s/smtp.db", g_dir);
    db_t *db = NULL;
    T_EQ_INT(db_open(&db, "smtp", dbpath, db_core_migrations, NULL), 0);
    if (!db) return;
    /* a port nobody listens on: bind one, never listen, keep it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    T_CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &alen) == 0);
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", g_dir);
    snprintf(cfg.smtp_url, sizeof(cfg.smtp_url), "smtp://127.0.0.1:%d", ntohs(a.sin_port));
    /* a process delivering what is due stops at the first unreachable try:
     * one row tried, the others left as they were for the worker */
    mail_msg_t d1 = {"down-1", "a@uberpopug.inc", "Down", "x"}, d2 = {"down-2", "b@uberpopug.inc", "Down", "x"},
               d3 = {"down-3", "c@uberpopug.inc", "Down", "x"};
    db_conn_t *c = db_conn(db);
    T_EQ_INT(db_begin(c), 0);
    T_EQ_INT(mail_enqueue(c, &d1), 0);
    T_EQ_INT(mail_enqueue(c, &d2), 0);
    T_EQ_INT(mail_enqueue(c, &d3), 0);
    T_EQ_INT(db_commit(c), 0);
    T_EQ_INT(mail_deliver_due(db, &cfg), 1);
    T_EQ_INT(qint(db, "SELECT attempts FROM mail_outbox WHERE id = ?1", "down-1"), 1);
    T_EQ_INT(qint(db, "SELECT sum(attempts) FROM mail_outbox", NULL), 1);
    T_EQ_INT(db_exec(c, "DELETE FROM mail_outbox"), 0);

    T_EQ_INT(mail_start(db, &cfg), 0);
    mail_msg_t m = {"retry-1", "popug@uberpopug.inc", "Retry", "x"};
    T_EQ_INT(enqueue_tx(db, &m, 1), 0);
    T_CHECK(eventually(attempted_twice, db));
    T_EQ_INT(mail_pending(db), 1);
    T_EQ_INT(qint(db, "SELECT last_error IS NOT NULL FROM mail_outbox", NULL), 1);
    T_EQ_INT(qint(db, "SELECT count(*) FROM mail_sent", NULL), 0);
    mail_stop_all();
    close(s);
    db_close(db);
}

/* The config keys of mail: mail_from (ATES_MAIL_FROM), notify_mail
 * (ATES_NOTIFY_MAIL, a boolean in ates.lua). */
static void test_config(void)
{
    char file[600];
    snprintf(file, sizeof(file), "%s/ates.lua", g_dir);
    FILE *f = fopen(file, "w");
    if (!f) return;
    fputs("return { notify_mail = true, mail_from = \"Popug Office <office@popug.test>\" }\n", f);
    fclose(f);
    unsetenv("ATES_MAIL_FROM");
    unsetenv("ATES_NOTIFY_MAIL");
    config_t c;
    T_EQ_INT(config_load(&c, file), 0);
    T_CHECK(c.notify_mail);
    T_EQ_STR(c.mail_from, "Popug Office <office@popug.test>");
    setenv("ATES_NOTIFY_MAIL", "0", 1);
    T_EQ_INT(config_load(&c, file), 0);
    T_CHECK(!c.notify_mail);
    setenv("ATES_NOTIFY_MAIL", "maybe", 1);
    T_EQ_INT(config_load(&c, file), -1);
    T_CHECK(strstr(diag_last()->message, "ATES_NOTIFY_MAIL") != NULL);
    unsetenv("ATES_NOTIFY_MAIL");
    setenv("ATES_MAIL_FROM", "evil\r\nBcc: x@y.z", 1);
    T_EQ_INT(config_load(&c, file), -1);
    T_CHECK(strstr(diag_last()->message, "ATES_MAIL_FROM") != NULL);
    unsetenv("ATES_MAIL_FROM");

    f = fopen(file, "w");
    if (!f) return;
    fputs("return { }\n", f);
    fclose(f);
    T_EQ_INT(config_load(&c, file), 0);
    T_CHECK(!c.notify_mail); /* off by default */
    T_EQ_STR(c.mail_from, MAIL_FROM_DEFAULT);
    f = fopen(file, "w");
    if (!f) return;
    fputs("return { mail_from = true }\n", f); /* a boolean only where one is meant */
    fclose(f);
    T_EQ_INT(config_load(&c, file), -1);
}

int main(void)
{
    if (t_tmpdir(g_dir, sizeof(g_dir), "mail") < 0) return 1;
    test_date();
    test_format_plain();
    test_format_body();
    test_format_subject();
    test_validation();
    test_spool();
    test_spool_batch();
    test_queue_spool();
    test_queue_smtp_batch();
    test_queue_smtp_down();
    test_config();
    return t_done();
}

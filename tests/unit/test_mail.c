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
#include <stdlib.h>
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
    mail_stop_all();
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
    test_queue_spool();
    test_queue_smtp_down();
    test_config();
    return t_done();
}

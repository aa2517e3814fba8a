/*
 * mail: outgoing mail, durable and delivered after commit.
 *
 * A service queues a mail inside one of its write transactions
 * (mail_enqueue): the message goes into the `mail_outbox` table of the
 * service's own database, so it exists exactly when the business change
 * that caused it does. A mail worker thread per running service (started
 * by the runtime) delivers the rows after commit and deletes them, noting
 * each delivered id in `mail_sent`, so queuing an id again is a no-op.
 *
 * Delivery: with no smtp_url (ATES_SMTP_URL unset) the RFC 5322 message is
 * written to DATA/mail/<id>.eml atomically (temp file, fsync, rename): a
 * redelivery after a crash rewrites the same bytes into the same single
 * file. With smtp_url it is sent through libcurl, retried with backoff
 * while the server fails (at-least-once; the stable Message-ID <id@ates>
 * makes a duplicate recognizable). The Date header is the enqueue time, so
 * every delivery of one mail is byte-identical.
 *
 * Ids name files and Message-IDs: 1..MAIL_ID_MAX of [A-Za-z0-9._+=-], not
 * starting or ending with '.', no "..". Ids share one spool directory per
 * data dir: prefix them with the service's purpose ("notify-<event id>",
 * "payout-<day>-<account>").
 */
#ifndef ATES_MAIL_H
#define ATES_MAIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "diag.h"

#define MAIL_ID_MAX 200
#define MAIL_ADDR_MAX 254
#define MAIL_FROM_MAX 256
#define MAIL_SUBJECT_MAX 2000          /* bytes of UTF-8 */
#define MAIL_TEXT_MAX 1048576          /* bytes of UTF-8 (1 MiB) */
#define MAIL_DATE_LEN 32               /* "Tue, 24 Nov 2026 10:00:00 +0000" + NUL */
#define MAIL_FROM_DEFAULT "aTES <noreply@uberpopug.inc>"

typedef struct mail_msg {
    const char *id;      /* stable unique key: names DATA/mail/<id>.eml and the Message-ID */
    const char *to;      /* one address */
    const char *subject; /* UTF-8, no CR/LF */
    const char *text;    /* UTF-8 body */
} mail_msg_t;

/* Queue a mail inside tx (a write transaction on the service's database);
 * it is delivered after commit by the service's mail worker. A second
 * enqueue with an id already queued or already sent is ignored (0).
 * -1 with diag DIAG_VALIDATION on a bad address/subject (CR/LF, empty). */
int mail_enqueue(db_conn_t *tx, const mail_msg_t *m);

/* --- pure parts (mail.c) ------------------------------------------------- */

/* 0 when every field of `m` is acceptable, else -1 with DIAG_VALIDATION
 * naming the field: id as above; `to` one addr-spec (no spaces, controls,
 * or any of <>()[]\,;:"; one '@'); subject non-empty UTF-8 without control
 * characters; text UTF-8 (NULL is refused; "" is fine). */
int mail_check(const mail_msg_t *m);
/* The From value: "addr" or "Display Name <addr>", printable ASCII. */
int mail_check_from(const char *from);
/* The bare address of a From value (what is inside <>), into out. */
int mail_from_addr(const char *from, char out[MAIL_ADDR_MAX + 1]);

/* RFC 5322 date-time of `ms` in UTC, e.g. "Tue, 24 Nov 2026 10:00:00 +0000". */
void mail_date(int64_t ms, char out[MAIL_DATE_LEN]);

/* The whole message, CRLF line endings: Date (date_ms), From, To, Subject
 * (RFC 2047 B-encoded words when not plain short ASCII), Message-ID
 * <id@ates>, MIME-Version, Content-Type text/plain; charset=utf-8,
 * Content-Transfer-Encoding quoted-printable; then the body with every line
 * break as CRLF. *out is malloc'd (NUL-terminated), *len its length.
 * -1 with DIAG_VALIDATION when mail_check or mail_check_from fails. */
int mail_format(char **out, size_t *len, const mail_msg_t *m, const char *from, int64_t date_ms);

/* --- delivery (mail_deliver.c) ------------------------------------------- */

/* One message of a delivery batch. The delivery sets rc: 0 delivered, -1
 * failed (why says how), 1 not tried (stopped, or the SMTP server was
 * unreachable before its turn); and unreachable when it failed with no
 * reply from the server: the server, not this message, is the trouble. */
#define MAIL_BATCH_MAX 64
typedef struct mail_out {
    const char *id;  /* names the spool file */
    const char *to;  /* the envelope recipient (SMTP) */
    const char *msg; /* the formatted message (mail_format) */
    size_t len;
    int rc;
    bool unreachable;
    char why[DIAG_MESSAGE_MAX]; /* a diag message */
} mail_out_t;

/* Write each out[i].msg to dir/<id>.eml atomically (dir is created), n at
 * most MAIL_BATCH_MAX: each into a temp file, all of them put to the
 * device at once (sync_file_range), then each fdatasync'ed and renamed into
 * place, then one fsync of the directory. Only the batch's own bytes are
 * waited for: a syncfs would also wait for every dirty page of the file
 * system (the databases, the broker's store; with 2 GB of them, 640 mails
 * took 3.2 s that way and 0.8 s this way).
 * How many were delivered (out[i].rc each). */
int mail_spool_write_batch(const char *dir, mail_out_t *out, int n);
/* The same for one message: 0, or -1 with diag DIAG_UNAVAILABLE. */
int mail_spool_write(const char *dir, const char *id, const char *msg, size_t len);
/* Remove the temp files (".<id>.<tid>.tmp") that a delivery interrupted by
 * a crash left in `dir`, when older than `older_than_ms` (younger ones may
 * belong to another process writing into the same spool). Returns how many
 * were removed, or -1 (diag). A missing dir has none. */
#define MAIL_TEMP_STALE_MS (10LL * 60 * 1000)
int mail_spool_sweep(const char *dir, int64_t older_than_ms);
/* Send each out[i] through SMTP at `url` (smtp://host:port), envelope from
 * `from_addr` to out[i].to, over one connection, in order. A failure with
 * no reply from the server (connection refused, lost, timed out) leaves the
 * rest untried. `stop` (may be NULL) aborts a transfer in progress when it
 * becomes non-zero. How many were delivered, or -1 (diag) when none could
 * be tried. */
int mail_smtp_send_batch(const char *url, const char *from_addr, mail_out_t *out, int n,
                         const atomic_int *stop);

/* --- the worker (mail_queue.c) ------------------------------------------- */

/* The core migration that creates mail_outbox and mail_sent (in
 * db_core_migrations, so every service file has them). */
extern const char mail_core_migration[];

/* Start the mail worker of `db` (one per service database): spool under
 * cfg->data_dir/mail or send to cfg->smtp_url, From cfg->mail_from. */
int mail_start(db_t *db, const config_t *cfg);
/* Deliver, in the calling thread, every row of db's mail_outbox that is
 * due now, once (a failure schedules its retry as the worker does): for a
 * process that queues mail and exits, e.g. a CLI command, when no running
 * service may deliver it soon. It stops at an unreachable SMTP server,
 * leaving the rest queued for the service's worker. The number of rows
 * tried, or -1. */
int mail_deliver_due(db_t *db, const config_t *cfg);
/* Stop and join every mail worker (a delivery in progress is aborted and
 * retried at the next start). */
void mail_stop_all(void);
/* Rows waiting in db's mail_outbox (for tests and metrics). */
int64_t mail_pending(db_t *db);

#endif

/*
 * db_vfs: SQLite's default VFS with the writes of each WAL commit gathered
 * into one system call (see db_vfs.c).
 */
#ifndef ATES_DB_VFS_H
#define ATES_DB_VFS_H

/* Make it the process's default VFS; idempotent, thread-safe. Before the
 * first sqlite3_open. */
void db_vfs_register(void);

#endif

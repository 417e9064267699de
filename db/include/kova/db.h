/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova db: the agent's SQLite state (state.db).
 *
 * Contract:
 *  - kova_db_open() creates/opens the database, turns on WAL, a busy timeout and foreign keys on
 *    every connection, and applies the versioned migrations (PRAGMA user_version) each in one
 *    transaction, so a crash never leaves a half-migrated schema.
 *  - The handle is a small pool of connections, safe to share between threads: acquire one for the
 *    duration of a request, release it afterwards.
 *  - Every state change runs inside kova_db_begin()/kova_db_commit() (BEGIN IMMEDIATE): one
 *    transaction per change, rolled back on any error.
 * Errors: 0 or -errno (-EIO for an SQLite error, logged to stderr).
 */
#ifndef KOVA_DB_H
#define KOVA_DB_H

#include <sqlite3.h>
#include <stdint.h>

struct kova_db;

/* Opens (creating if needed) the database at path with nconn pooled connections (1..64). */
int kova_db_open(const char *path, unsigned nconn, struct kova_db **out);
void kova_db_close(struct kova_db *db);

/* Borrows a connection (blocks while all are in use); give it back with kova_db_release. */
sqlite3 *kova_db_acquire(struct kova_db *db);
void kova_db_release(struct kova_db *db, sqlite3 *conn);

/* The schema version the database is at after open (number of applied migrations). */
int kova_db_schema_version(struct kova_db *db);
/* The newest schema version this build knows. */
int kova_db_latest_version(void);

/*
 * A counter bumped after every committed write transaction on any pooled connection (explicit
 * transactions and autocommit statements alike), once the change is visible to new readers,
 * and when conn (a borrowed connection with no transaction open) sees that another process
 * committed. Something derived from the database (a cached response) computed from reads on
 * conn started after the generation was read is current for as long as the generation (read
 * again this way) is unchanged.
 * Returns -ENOTSUP when the database is not in WAL mode (commits are then not seen), -EINVAL
 * when conn is not a pooled connection or is inside a transaction, -EIO, else 0.
 * Nothing may set PRAGMA wal_autocheckpoint or sqlite3_wal_hook on a pooled connection: that
 * would replace the hook that counts.
 */
int kova_db_generation(struct kova_db *db, sqlite3 *conn, uint64_t *out);

/* Transactions on a borrowed connection. begin = BEGIN IMMEDIATE (takes the write lock). */
int kova_db_begin(sqlite3 *conn);
int kova_db_commit(sqlite3 *conn);
void kova_db_rollback(sqlite3 *conn);

/* Runs SQL without results; returns 0 or -EIO. */
int kova_db_exec(sqlite3 *conn, const char *sql);

/* Prepares sql; returns NULL on error (logged). Release with kova_db_done(). */
sqlite3_stmt *kova_db_prepare(sqlite3 *conn, const char *sql);
void kova_db_done(sqlite3_stmt *st);

/* Maps an sqlite result code to -errno: SQLITE_CONSTRAINT → -EEXIST, BUSY/LOCKED → -EBUSY,
 * anything else → -EIO. */
int kova_db_errno(int rc);

#endif

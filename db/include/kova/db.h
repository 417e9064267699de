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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/*
 * Runs fn(conn, arg) in one write transaction on a borrowed connection: BEGIN IMMEDIATE, retried
 * on SQLITE_BUSY (another process holds the write lock past the busy timeout) up to 5 times;
 * committed when fn returns >= 0, rolled back otherwise. Returns fn's result or -errno.
 */
int kova_db_txn(struct kova_db *db, int (*fn)(sqlite3 *conn, void *arg), void *arg);

/* ---- typed access: servers.c (the columns the compute manager reads and writes) ---- */

#define KOVA_DB_ID_MAX      64
#define KOVA_DB_CMDLINE_MAX 2048

struct kova_db_server {
    char id[KOVA_DB_ID_MAX];
    char vm_state[32];
    char task_state[40]; /* "" when has_task is false */
    bool has_task;
    char image_ref[KOVA_DB_ID_MAX];
    long long vcpus, ram, disk; /* MiB, GiB */
    pid_t vmm_pid;              /* 0: none recorded */
    unsigned long long vmm_start;
    char kernel_id[KOVA_DB_ID_MAX], ramdisk_id[KOVA_DB_ID_MAX]; /* what it boots ("": none) */
    char cmdline[KOVA_DB_CMDLINE_MAX];
};

/* How a task ends (kova_db_server_finish). */
struct kova_db_task_end {
    const char *id;
    const char *task; /* the task_state it ran under: only then is the row changed */
    const char *vm_state;
    int power_state;
    bool vmm_gone;     /* clear the VMM columns */
    bool launched;     /* set launched_at */
    int fault_code;    /* with fault */
    const char *fault; /* NULL: none; else recorded as the server's fault and the event's */
};

/* -ENOENT when there is no such server. */
int kova_db_server_get(sqlite3 *conn, const char *id, struct kova_db_server *out);
/* Every server (malloc'd array in *out, free() it). */
int kova_db_server_list(sqlite3 *conn, struct kova_db_server **out, size_t *n);
/* Sets task_state (NULL clears it) and updated_at. Returns the number of rows changed (0/1). */
int kova_db_server_set_task(sqlite3 *conn, const char *id, const char *task);
/* A build takes its server over: scheduling -> spawning, only while vm_state is building and no
 * delete took it. 1 when it did. */
int kova_db_server_claim_build(sqlite3 *conn, const char *id);
/* Servers a previous agent left with a build or a delete to do (ids in a malloc'd array, del[k]
 * true for a delete); the builds among them are put back to task_state scheduling. */
int kova_db_server_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], bool **del, size_t *n);
/* Records (pid > 0) or clears the VMM that runs the server. */
int kova_db_server_set_vmm(sqlite3 *conn, const char *id, pid_t pid, unsigned long long start);
/* Records what the server boots. */
int kova_db_server_set_boot(sqlite3 *conn, const char *id, const char *kernel_id,
                            const char *ramdisk_id, const char *cmdline);
/* In one transaction: the task's end state, the server's fault, and the open instance action
 * (and its events) closed with Success or Error. 1 when the row was the task's, 0 when another
 * task (delete) had taken it over (then only the VMM columns are cleared when vmm_gone). */
int kova_db_server_finish(struct kova_db *db, const struct kova_db_task_end *e);
/* The VMM pid exited by itself: SHUTOFF (vm_state active/paused/suspended become stopped,
 * power_state 4, VMM columns cleared), only while the row still names that pid. 1 when it
 * did. */
int kova_db_server_record_exit(sqlite3 *conn, const char *id, pid_t pid);
/* After an agent restart: the state found, task_state cleared, the VMM columns kept only when
 * alive, a fault (code 500) when fault is not NULL. */
int kova_db_server_reconcile(sqlite3 *conn, const char *id, const char *vm_state, int power_state,
                             bool alive, const char *fault);
/* Removes the server's row (its metadata and actions go with it). */
int kova_db_server_delete(sqlite3 *conn, const char *id);
/* 1 when a server with this id exists, 0 when not. */
int kova_db_server_exists(sqlite3 *conn, const char *id);

/* ---- typed access: images.c (what the compute manager reads of an image) ---- */
struct kova_db_image {
    char status[32];
    char disk_format[32];
    char *properties; /* JSON object text, malloc'd: free() it */
};
/* -ENOENT when there is no such image. */
int kova_db_image_get(sqlite3 *conn, const char *id, struct kova_db_image *out);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* Private to db/: the small helpers the typed-access files (servers.c, flavors.c, ...) share. */
#ifndef KOVA_DB_INTERNAL_H
#define KOVA_DB_INTERNAL_H

#include "kova/db.h"

/* "2026-11-26T07:11:32Z" (z) or "2026-11-26T07:11:32.123456" (microseconds, as Nova's actions
 * and keypairs) */
void db_now_iso(char out[32], bool z);

/* Copies text column c into dst (len bytes, truncated, NUL-terminated; "" for NULL). */
void db_copy_col(char *dst, size_t len, sqlite3_stmt *st, int c);

/* ---- running a statement: its parameters ---- */

/* One parameter of a statement. A zeroed entry and DB_TEXT(NULL) bind nothing: the parameter is
 * NULL. Text is copied by SQLite (the caller's may go away after the call). */
struct db_val {
    enum { DB_V_NULL, DB_V_TEXT, DB_V_INT, DB_V_REAL } type;
    union {
        const char *s;
        long long i;
        double d;
    };
};
#define DB_NULL    ((struct db_val){.type = DB_V_NULL})
#define DB_TEXT(v) ((struct db_val){.type = DB_V_TEXT, .s = (v)})
#define DB_INT(v)  ((struct db_val){.type = DB_V_INT, .i = (v)})
#define DB_REAL(v) ((struct db_val){.type = DB_V_REAL, .d = (v)})
/* The two arguments (array, count) the helpers below take for ?1, ?2, ...: DB_ARGS(DB_TEXT(id),
 * DB_INT(n)); [k] = ... sets ?k+1 and leaves the ones skipped NULL. At least one entry; none:
 * pass NULL, 0. */
#define DB_ARGS(...)                                                                               \
    (const struct db_val[]){__VA_ARGS__},                                                          \
        sizeof((const struct db_val[]){__VA_ARGS__}) / sizeof(struct db_val)

/* ---- list order (db.c) ---- */

/* Appends s to the n-byte buffer b (its length in *len); false, b unchanged, if it would not
 * fit. */
bool db_put(char *b, size_t n, size_t *len, const char *s);
/* Appends a list's order to the SQL text in b (a SELECT ... FROM table WHERE ...): with a
 * marker (marker_where selects its row in table, e.g. "id = ?4"), " AND (...)": only the rows
 * after the marker's in that order; then " ORDER BY ...". expr[0..k-1] are SQL expressions of
 * table's columns (trusted text, never a client's), desc[i] their directions, most significant
 * first; the last must be unique per row (the caller's tie-break). 0, or -E2BIG when b is too
 * small. */
int db_sql_order(char *b, size_t n, size_t *len, const char *table, const char *marker_where,
                 const char *const *expr, const bool *desc, int k);

/* ---- writes ---- */

/* Runs the prepared write st again with v[0..n-1] bound to ?1..?n (the bindings before are
 * cleared); st is kept for the next run (release it with kova_db_done). st NULL: -EIO. The
 * number of rows changed or -errno. */
int db_run(sqlite3 *conn, sqlite3_stmt *st, const struct db_val *v, size_t n);
/* Prepares sql, runs it once with v bound (db_run) and releases it: the number of rows changed
 * or -errno. */
int db_exec_bound(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n);
/* db_exec_bound for a write that must find its row: 0 when it changed one or more, -ENOENT when
 * none, -errno. */
int db_exec_found(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n);

/* ---- reads ---- */

/* Reads the row st is on into dst (or acts on it). 0 or -errno for a reader; for db_each, 0 to
 * go on, > 0 to stop there. A reader that fails leaves nothing to release in dst. */
typedef int (*db_row_fn)(sqlite3_stmt *st, void *dst);

/* Prepares sql with v bound and calls fn(st, arg) on each row, in order, until fn returns
 * non-zero; the statement is released. fn's value when it stopped (> 0 or -errno), 0 after the
 * last row (none: fn is never called), -errno on an SQLite error. */
int db_each(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n, db_row_fn fn,
            void *arg);
/* The first row of the query, read by read into dst: 0, -ENOENT when there is none (dst
 * untouched), read's error, or -errno. */
int db_get(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n, db_row_fn read,
           void *dst);
/* A reader for db_get: every column of the row as an integer into dst (long long[], as many as
 * the row has columns). */
int db_read_int64(sqlite3_stmt *st, void *dst);

/* How db_collect stores a row: size bytes an element, filled by read; drop (NULL: nothing to do)
 * releases what read allocated in an element. */
struct db_rows {
    size_t size;
    db_row_fn read;
    void (*drop)(void *elem);
};
/* Every row of the query, each read into the next element of a malloc'd array grown as needed:
 * 0 with the array in *out (NULL when there are no rows; free() it after dropping its elements)
 * and *len elements; else -errno or the reader's error, with every element read so far dropped,
 * the array freed, *out NULL and *len 0. */
int db_collect(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n,
               const struct db_rows *rows, void **out, size_t *len);

/* ---- shared with the other tables ---- */

/* Inserts an instance action of the server with this seq (start time now,
 * "2026-11-26T07:11:32.123456"), with its event when event is not NULL (actions.c). 0 or -errno. */
int db_action_insert(sqlite3 *conn, long long seq, const char *action, const char *event,
                     const struct kova_db_requester *q, const char *now);
/* Closes the server's open instance actions and their events at now: Success, or Error with
 * fault as the events' traceback when fault is not NULL (actions.c). 0 or -errno. */
int db_action_finish(sqlite3 *conn, const char *server_id, const char *now, const char *fault);

#endif

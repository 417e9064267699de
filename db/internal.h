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

/* Steps a prepared write (st NULL: -EIO); the number of rows changed or -errno. The statement
 * is released. */
int db_step_write(sqlite3 *conn, sqlite3_stmt *st);

/* Steps a prepared one-row read (st NULL: -EIO): 0 when it is on a row (read it, then
 * kova_db_done), -ENOENT when there is none, -errno; on anything but 0 st is released. */
int db_step_row(sqlite3_stmt *st);

/* Grows a malloc'd array of elements of size sz to hold one more (*cap doubles, from 16).
 * 0 or -ENOMEM (the array is left as it was). */
int db_grow(void **v, size_t *cap, size_t len, size_t sz);

/* Inserts an instance action of the server with this seq (start time now,
 * "2026-11-26T07:11:32.123456"), with its event when event is not NULL (actions.c). 0 or -errno. */
int db_action_insert(sqlite3 *conn, long long seq, const char *action, const char *event,
                     const struct kova_db_requester *q, const char *now);
/* Closes the server's open instance actions and their events at now: Success, or Error with
 * fault as the events' traceback when fault is not NULL (actions.c). 0 or -errno. */
int db_action_finish(sqlite3 *conn, const char *server_id, const char *now, const char *fault);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the instance_actions and instance_action_events tables (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one list of the columns struct kova_db_action holds, and its reader. */
#define ACTION_COLS "id, action, request_id, user_id, project_id, start_time, finish_time, message"

static int read_action(sqlite3_stmt *st, void *dst)
{
    struct kova_db_action *a = dst;
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    db_copy_col(a->action, sizeof(a->action), st, 1);
    db_copy_col(a->request_id, sizeof(a->request_id), st, 2);
    db_copy_col(a->user_id, sizeof(a->user_id), st, 3);
    db_copy_col(a->project_id, sizeof(a->project_id), st, 4);
    db_copy_col(a->start_time, sizeof(a->start_time), st, 5);
    a->has_finish = sqlite3_column_type(st, 6) != SQLITE_NULL;
    db_copy_col(a->finish_time, sizeof(a->finish_time), st, 6);
    a->has_message = sqlite3_column_type(st, 7) != SQLITE_NULL;
    db_copy_col(a->message, sizeof(a->message), st, 7);
    return 0;
}

static const struct db_rows action_rows = {sizeof(struct kova_db_action), read_action, NULL};

/* The same for struct kova_db_action_event. */
#define EVENT_COLS "event, start_time, finish_time, result, traceback"

static int read_event(sqlite3_stmt *st, void *dst)
{
    struct kova_db_action_event *e = dst;
    memset(e, 0, sizeof(*e));
    db_copy_col(e->event, sizeof(e->event), st, 0);
    db_copy_col(e->start_time, sizeof(e->start_time), st, 1);
    e->has_finish = sqlite3_column_type(st, 2) != SQLITE_NULL;
    db_copy_col(e->finish_time, sizeof(e->finish_time), st, 2);
    e->has_result = sqlite3_column_type(st, 3) != SQLITE_NULL;
    db_copy_col(e->result, sizeof(e->result), st, 3);
    const unsigned char *tb = sqlite3_column_text(st, 4);
    if (tb && !(e->traceback = strdup((const char *)tb)))
        return -ENOMEM;
    return 0;
}

static void drop_event(void *e)
{
    free(((struct kova_db_action_event *)e)->traceback);
}

static const struct db_rows event_rows = {sizeof(struct kova_db_action_event), read_event,
                                          drop_event};

int db_action_insert(sqlite3 *conn, long long seq, const char *action, const char *event,
                     const struct kova_db_requester *q, const char *now)
{
    int r = db_exec_bound(conn,
                          "INSERT INTO instance_actions (server_seq, action, request_id, user_id, "
                          "project_id, start_time) VALUES (?,?,?,?,?,?)",
                          DB_ARGS(DB_INT(seq), DB_TEXT(action), DB_TEXT(q->request_id),
                                  DB_TEXT(q->user_id), DB_TEXT(q->project_id), DB_TEXT(now)));
    if (r < 0 || !event)
        return r < 0 ? r : 0;
    r = db_exec_bound(
        conn,
        "INSERT INTO instance_action_events (action_id, event, start_time) VALUES "
        "(?,?,?)",
        DB_ARGS(DB_INT(sqlite3_last_insert_rowid(conn)), DB_TEXT(event), DB_TEXT(now)));
    return r < 0 ? r : 0;
}

int db_action_finish(sqlite3 *conn, const char *server_id, const char *now, const char *fault)
{
    int r = db_exec_bound(conn,
                          "UPDATE instance_action_events SET finish_time = ?2, result = ?3, "
                          "traceback = ?4 WHERE finish_time IS NULL AND action_id IN (SELECT a.id "
                          "FROM instance_actions a JOIN servers s ON s.seq = a.server_seq WHERE "
                          "s.id = ?1)",
                          DB_ARGS(DB_TEXT(server_id), DB_TEXT(now),
                                  DB_TEXT(fault ? "Error" : "Success"), DB_TEXT(fault)));
    if (r < 0)
        return r;
    r = db_exec_bound(conn,
                      "UPDATE instance_actions SET finish_time = ?2, message = ?3 WHERE "
                      "finish_time IS NULL AND server_seq = (SELECT seq FROM servers WHERE id = "
                      "?1)",
                      DB_ARGS(DB_TEXT(server_id), DB_TEXT(now), DB_TEXT(fault ? "Error" : NULL)));
    return r < 0 ? r : 0;
}

struct start_args {
    const char *server_id, *action, *event;
    const struct kova_db_requester *q;
};

static int start_txn(sqlite3 *conn, void *arg)
{
    const struct start_args *a = arg;
    long long seq;
    int r = db_get(conn, "SELECT seq FROM servers WHERE id = ?", DB_ARGS(DB_TEXT(a->server_id)),
                   db_read_int64, &seq);
    if (r < 0)
        return r;
    char now[32];
    db_now_iso(now, false);
    return db_action_insert(conn, seq, a->action, a->event, a->q, now);
}

int kova_db_action_start(sqlite3 *conn, const char *server_id, const char *action,
                         const char *event, const struct kova_db_requester *q)
{
    struct start_args a = {server_id, action, event, q};
    return kova_db_txn_conn(conn, start_txn, &a);
}

int kova_db_action_list(sqlite3 *conn, const char *server_id, struct kova_db_action **out,
                        size_t *n)
{
    return db_collect(conn,
                      "SELECT " ACTION_COLS " FROM instance_actions WHERE server_seq = (SELECT seq "
                      "FROM servers WHERE id = ?) ORDER BY id DESC",
                      DB_ARGS(DB_TEXT(server_id)), &action_rows, (void **)out, n);
}

int kova_db_action_get(sqlite3 *conn, const char *server_id, const char *request_id,
                       struct kova_db_action *out)
{
    return db_get(conn,
                  "SELECT " ACTION_COLS " FROM instance_actions WHERE server_seq = (SELECT seq "
                  "FROM servers WHERE id = ?1) AND request_id = ?2 ORDER BY id DESC LIMIT 1",
                  DB_ARGS(DB_TEXT(server_id), DB_TEXT(request_id)), read_action, out);
}

void kova_db_action_events_free(struct kova_db_action_event *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        drop_event(&v[i]);
    free(v);
}

int kova_db_action_events(sqlite3 *conn, long long action_id, struct kova_db_action_event **out,
                          size_t *n)
{
    return db_collect(conn,
                      "SELECT " EVENT_COLS " FROM instance_action_events WHERE action_id = ? "
                      "ORDER BY id",
                      DB_ARGS(DB_INT(action_id)), &event_rows, (void **)out, n);
}

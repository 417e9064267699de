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

static void read_action(sqlite3_stmt *st, struct kova_db_action *a)
{
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
}

/* The same for struct kova_db_action_event. */
#define EVENT_COLS "event, start_time, finish_time, result, traceback"

static int read_event(sqlite3_stmt *st, struct kova_db_action_event *e)
{
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

int db_action_insert(sqlite3 *conn, long long seq, const char *action, const char *event,
                     const struct kova_db_requester *q, const char *now)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "INSERT INTO instance_actions (server_seq, action, "
                                             "request_id, user_id, project_id, start_time) "
                                             "VALUES (?,?,?,?,?,?)");
    if (st) {
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, action, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, q->request_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, q->user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, q->project_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    if (r < 0 || !event)
        return r < 0 ? r : 0;
    sqlite3_int64 aid = sqlite3_last_insert_rowid(conn);
    st = kova_db_prepare(conn, "INSERT INTO instance_action_events (action_id, event, start_time) "
                               "VALUES (?,?,?)");
    if (st) {
        sqlite3_bind_int64(st, 1, aid);
        sqlite3_bind_text(st, 2, event, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    }
    r = db_step_write(conn, st);
    return r < 0 ? r : 0;
}

int db_action_finish(sqlite3 *conn, const char *server_id, const char *now, const char *fault)
{
    sqlite3_stmt *st =
        kova_db_prepare(conn, "UPDATE instance_action_events SET finish_time = ?2, result = ?3, "
                              "traceback = ?4 WHERE finish_time IS NULL AND action_id IN (SELECT "
                              "a.id FROM instance_actions a JOIN servers s ON s.seq = "
                              "a.server_seq WHERE s.id = ?1)");
    if (st) {
        sqlite3_bind_text(st, 1, server_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, fault ? "Error" : "Success", -1, SQLITE_STATIC);
        if (fault)
            sqlite3_bind_text(st, 4, fault, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    if (r < 0)
        return r;
    st = kova_db_prepare(conn, "UPDATE instance_actions SET finish_time = ?2, message = ?3 WHERE "
                               "finish_time IS NULL AND server_seq = (SELECT seq FROM servers "
                               "WHERE id = ?1)");
    if (st) {
        sqlite3_bind_text(st, 1, server_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
        if (fault)
            sqlite3_bind_text(st, 3, "Error", -1, SQLITE_STATIC);
    }
    r = db_step_write(conn, st);
    return r < 0 ? r : 0;
}

struct start_args {
    const char *server_id, *action, *event;
    const struct kova_db_requester *q;
};

static int start_txn(sqlite3 *conn, void *arg)
{
    const struct start_args *a = arg;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT seq FROM servers WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, a->server_id, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r < 0)
        return r;
    sqlite3_int64 seq = sqlite3_column_int64(st, 0);
    kova_db_done(st);
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
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " ACTION_COLS " FROM instance_actions WHERE "
                                             "server_seq = (SELECT seq FROM servers WHERE id = ?) "
                                             "ORDER BY id DESC");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, server_id, -1, SQLITE_TRANSIENT);
    struct kova_db_action *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        read_action(st, &v[len++]);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    kova_db_done(st);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

int kova_db_action_get(sqlite3 *conn, const char *server_id, const char *request_id,
                       struct kova_db_action *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " ACTION_COLS " FROM instance_actions WHERE "
                                             "server_seq = (SELECT seq FROM servers WHERE id = ?1) "
                                             "AND request_id = ?2 ORDER BY id DESC LIMIT 1");
    if (st) {
        sqlite3_bind_text(st, 1, server_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, request_id, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r == 0) {
        read_action(st, out);
        kova_db_done(st);
    }
    return r;
}

void kova_db_action_events_free(struct kova_db_action_event *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].traceback);
    free(v);
}

int kova_db_action_events(sqlite3 *conn, long long action_id, struct kova_db_action_event **out,
                          size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " EVENT_COLS " FROM instance_action_events "
                                             "WHERE action_id = ? ORDER BY id");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, action_id);
    struct kova_db_action_event *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        if ((r = read_event(st, &v[len])) < 0)
            break;
        len++;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    kova_db_done(st);
    if (r < 0) {
        kova_db_action_events_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

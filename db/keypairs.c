/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the keypairs table (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one list of the columns struct kova_db_keypair holds, and its reader. */
#define KEYPAIR_COLS "id, user_id, name, type, public_key, fingerprint, created_at"

static int read_keypair(sqlite3_stmt *st, struct kova_db_keypair *k)
{
    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(st, 0);
    db_copy_col(k->user_id, sizeof(k->user_id), st, 1);
    db_copy_col(k->name, sizeof(k->name), st, 2);
    db_copy_col(k->type, sizeof(k->type), st, 3);
    const unsigned char *pk = sqlite3_column_text(st, 4);
    db_copy_col(k->fingerprint, sizeof(k->fingerprint), st, 5);
    db_copy_col(k->created_at, sizeof(k->created_at), st, 6);
    k->public_key = strdup(pk ? (const char *)pk : "");
    return k->public_key ? 0 : -ENOMEM;
}

void kova_db_keypair_free(struct kova_db_keypair *k)
{
    free(k->public_key);
    k->public_key = NULL;
}

void kova_db_keypair_list_free(struct kova_db_keypair *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kova_db_keypair_free(&v[i]);
    free(v);
}

int kova_db_keypair_get(sqlite3 *conn, const char *user_id, const char *name,
                        struct kova_db_keypair *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " KEYPAIR_COLS " FROM keypairs WHERE "
                                             "user_id = ? AND name = ?");
    if (st) {
        sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r == 0) {
        r = read_keypair(st, out);
        kova_db_done(st);
    }
    return r;
}

int kova_db_keypair_list(sqlite3 *conn, const char *user_id, struct kova_db_keypair **out,
                         size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " KEYPAIR_COLS " FROM keypairs WHERE "
                                             "user_id = ? ORDER BY name");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    struct kova_db_keypair *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        r = read_keypair(st, &v[len++]);
        if (r < 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
    if (r < 0) {
        kova_db_keypair_list_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

struct create_args {
    struct kova_db_keypair *k;
    long long quota;
};

static int create_txn(sqlite3 *conn, void *arg)
{
    struct create_args *a = arg;
    struct kova_db_keypair *k = a->k;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT count(*), coalesce(sum(name = ?2), 0) FROM "
                                             "keypairs WHERE user_id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, k->user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, k->name, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r < 0)
        return r;
    long long count = sqlite3_column_int64(st, 0), dup = sqlite3_column_int64(st, 1);
    kova_db_done(st);
    if (dup)
        return -EEXIST;
    if (a->quota >= 0 && count >= a->quota)
        return -EDQUOT;
    char now[32];
    db_now_iso(now, false);
    st = kova_db_prepare(conn, "INSERT INTO keypairs (user_id, name, type, public_key, "
                               "fingerprint, created_at) VALUES (?,?,?,?,?,?)");
    if (st) {
        sqlite3_bind_text(st, 1, k->user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, k->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, k->type, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, k->public_key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, k->fingerprint, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
    }
    if ((r = db_step_write(conn, st)) < 0)
        return r;
    k->id = sqlite3_last_insert_rowid(conn);
    snprintf(k->created_at, sizeof(k->created_at), "%s", now);
    return 0;
}

int kova_db_keypair_create(sqlite3 *conn, struct kova_db_keypair *k, long long quota)
{
    struct create_args a = {k, quota};
    return kova_db_txn_conn(conn, create_txn, &a);
}

int kova_db_keypair_delete(sqlite3 *conn, const char *user_id, const char *name)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "DELETE FROM keypairs WHERE user_id = ? AND name = ?");
    if (st) {
        sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

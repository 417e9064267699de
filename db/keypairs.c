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

static int read_keypair(sqlite3_stmt *st, void *dst)
{
    struct kova_db_keypair *k = dst;
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

static void drop_keypair(void *k)
{
    kova_db_keypair_free(k);
}

static const struct db_rows keypair_rows = {sizeof(struct kova_db_keypair), read_keypair,
                                            drop_keypair};

void kova_db_keypair_list_free(struct kova_db_keypair *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kova_db_keypair_free(&v[i]);
    free(v);
}

int kova_db_keypair_get(sqlite3 *conn, const char *user_id, const char *name,
                        struct kova_db_keypair *out)
{
    return db_get(conn, "SELECT " KEYPAIR_COLS " FROM keypairs WHERE user_id = ? AND name = ?",
                  DB_ARGS(DB_TEXT(user_id), DB_TEXT(name)), read_keypair, out);
}

int kova_db_keypair_list(sqlite3 *conn, const char *user_id, struct kova_db_keypair **out,
                         size_t *n)
{
    return db_collect(conn, "SELECT " KEYPAIR_COLS " FROM keypairs WHERE user_id = ? ORDER BY name",
                      DB_ARGS(DB_TEXT(user_id)), &keypair_rows, (void **)out, n);
}

struct create_args {
    struct kova_db_keypair *k;
    long long quota;
};

static int create_txn(sqlite3 *conn, void *arg)
{
    struct create_args *a = arg;
    struct kova_db_keypair *k = a->k;
    long long count_dup[2]; /* the user's keypairs, those of this name */
    int r = db_get(conn,
                   "SELECT count(*), coalesce(sum(name = ?2), 0) FROM keypairs WHERE user_id = ?1",
                   DB_ARGS(DB_TEXT(k->user_id), DB_TEXT(k->name)), db_read_int64, count_dup);
    if (r < 0)
        return r;
    if (count_dup[1])
        return -EEXIST;
    if (a->quota >= 0 && count_dup[0] >= a->quota)
        return -EDQUOT;
    char now[32];
    db_now_iso(now, false);
    r = db_exec_bound(conn,
                      "INSERT INTO keypairs (user_id, name, type, public_key, fingerprint, "
                      "created_at) VALUES (?,?,?,?,?,?)",
                      DB_ARGS(DB_TEXT(k->user_id), DB_TEXT(k->name), DB_TEXT(k->type),
                              DB_TEXT(k->public_key), DB_TEXT(k->fingerprint), DB_TEXT(now)));
    if (r < 0)
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
    return db_exec_found(conn, "DELETE FROM keypairs WHERE user_id = ? AND name = ?",
                         DB_ARGS(DB_TEXT(user_id), DB_TEXT(name)));
}

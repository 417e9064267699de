/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the flavors and flavor_extra_specs tables (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one list of the columns struct kova_db_flavor holds, and its reader. */
#define FLAVOR_COLS "id, name, ram, vcpus, disk, ephemeral, swap, rxtx_factor, is_public, disabled"

static int read_flavor(sqlite3_stmt *st, void *dst)
{
    struct kova_db_flavor *f = dst;
    memset(f, 0, sizeof(*f));
    db_copy_col(f->id, sizeof(f->id), st, 0);
    db_copy_col(f->name, sizeof(f->name), st, 1);
    f->ram = sqlite3_column_int64(st, 2);
    f->vcpus = sqlite3_column_int64(st, 3);
    f->disk = sqlite3_column_int64(st, 4);
    f->ephemeral = sqlite3_column_int64(st, 5);
    f->swap = sqlite3_column_int64(st, 6);
    f->rxtx_factor = sqlite3_column_double(st, 7);
    f->is_public = sqlite3_column_int(st, 8) != 0;
    f->disabled = sqlite3_column_int(st, 9) != 0;
    return 0;
}

static const struct db_rows flavor_rows = {sizeof(struct kova_db_flavor), read_flavor, NULL};

int kova_db_flavor_get(sqlite3 *conn, const char *id, struct kova_db_flavor *out)
{
    return db_get(conn, "SELECT " FLAVOR_COLS " FROM flavors WHERE id = ?", DB_ARGS(DB_TEXT(id)),
                  read_flavor, out);
}

static const char *sort_column(enum kova_db_flavor_sort s)
{
    switch (s) {
    case KOVA_DB_FLAVOR_BY_NAME:
        return "name";
    case KOVA_DB_FLAVOR_BY_RAM:
        return "ram";
    case KOVA_DB_FLAVOR_BY_VCPUS:
        return "vcpus";
    case KOVA_DB_FLAVOR_BY_DISK:
        return "disk";
    case KOVA_DB_FLAVOR_BY_EPHEMERAL:
        return "ephemeral";
    case KOVA_DB_FLAVOR_BY_SWAP:
        return "swap";
    case KOVA_DB_FLAVOR_BY_RXTX_FACTOR:
        return "rxtx_factor";
    case KOVA_DB_FLAVOR_BY_ID:
    default:
        return "id";
    }
}

int kova_db_flavor_list(sqlite3 *conn, const struct kova_db_flavor_filter *f,
                        struct kova_db_flavor **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *dir = f->desc ? "DESC" : "ASC";
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT " FLAVOR_COLS " FROM flavors WHERE (?1 < 0 OR is_public = ?1) AND ram >= ?2"
             " AND disk >= ?3 ORDER BY %s %s, id %s",
             sort_column(f->sort), dir, dir);
    struct kova_db_flavor *v;
    size_t len;
    int r = db_collect(conn, sql,
                       DB_ARGS(DB_INT(f->is_public < 0 ? -1 : f->is_public != 0),
                               DB_INT(f->min_ram), DB_INT(f->min_disk)),
                       &flavor_rows, (void **)&v, &len);
    if (r < 0)
        return r;
    /* the page: after the marker (ids are unique, so its first match is the one) */
    size_t first = 0;
    if (f->marker) {
        while (first < len && strcmp(v[first].id, f->marker) != 0)
            first++;
        if (first == len) {
            free(v);
            return -ENOENT;
        }
        first++;
    }
    len -= first;
    if (f->limit >= 0 && (unsigned long long)f->limit < len)
        len = (size_t)f->limit;
    if (first)
        memmove(v, v + first, len * sizeof(*v));
    *out = v;
    *n = len;
    return 0;
}

static int create_txn(sqlite3 *conn, void *arg)
{
    const struct kova_db_flavor *f = arg;
    long long taken;
    int r = db_get(conn,
                   "SELECT 1 FROM flavors WHERE id = ?1 UNION ALL SELECT 2 FROM flavors WHERE "
                   "name = ?2",
                   DB_ARGS(DB_TEXT(f->id), DB_TEXT(f->name)), db_read_int64, &taken);
    if (r == 0)
        return taken == 1 ? -EEXIST : -ENOTUNIQ;
    if (r != -ENOENT)
        return r;
    char now[32];
    db_now_iso(now, true);
    r = db_exec_bound(conn,
                      "INSERT INTO flavors (id, name, ram, vcpus, disk, ephemeral, swap, "
                      "rxtx_factor, is_public, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      DB_ARGS(DB_TEXT(f->id), DB_TEXT(f->name), DB_INT(f->ram), DB_INT(f->vcpus),
                              DB_INT(f->disk), DB_INT(f->ephemeral), DB_INT(f->swap),
                              DB_REAL(f->rxtx_factor), DB_INT(f->is_public), DB_TEXT(now)));
    return r < 0 ? r : 0;
}

int kova_db_flavor_create(sqlite3 *conn, const struct kova_db_flavor *f)
{
    return kova_db_txn_conn(conn, create_txn, (void *)f);
}

int kova_db_flavor_delete(sqlite3 *conn, const char *id)
{
    return db_exec_found(conn, "DELETE FROM flavors WHERE id = ?", DB_ARGS(DB_TEXT(id)));
}

/* ---- extra specs ---- */

static int read_spec(sqlite3_stmt *st, void *dst)
{
    struct kova_db_spec *s = dst;
    db_copy_col(s->key, sizeof(s->key), st, 0);
    db_copy_col(s->value, sizeof(s->value), st, 1);
    return 0;
}

static const struct db_rows spec_rows = {sizeof(struct kova_db_spec), read_spec, NULL};

int kova_db_flavor_specs(sqlite3 *conn, const char *flavor_id, struct kova_db_spec **out, size_t *n)
{
    return db_collect(conn,
                      "SELECT key, value FROM flavor_extra_specs WHERE flavor_id = ? ORDER BY key",
                      DB_ARGS(DB_TEXT(flavor_id)), &spec_rows, (void **)out, n);
}

int kova_db_flavor_spec_get(sqlite3 *conn, const char *flavor_id, const char *key,
                            struct kova_db_spec *out)
{
    return db_get(conn, "SELECT key, value FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?",
                  DB_ARGS(DB_TEXT(flavor_id), DB_TEXT(key)), read_spec, out);
}

struct specs_set {
    const char *flavor_id;
    const struct kova_db_spec *v;
    size_t n;
};

static int specs_set_txn(sqlite3 *conn, void *arg)
{
    const struct specs_set *a = arg;
    struct kova_db_flavor f;
    int r = kova_db_flavor_get(conn, a->flavor_id, &f);
    if (r < 0)
        return r;
    sqlite3_stmt *st = kova_db_prepare(conn, "INSERT OR REPLACE INTO flavor_extra_specs "
                                             "(flavor_id, key, value) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    for (size_t i = 0; i < a->n && r >= 0; i++)
        r = db_run(conn, st,
                   DB_ARGS(DB_TEXT(a->flavor_id), DB_TEXT(a->v[i].key), DB_TEXT(a->v[i].value)));
    kova_db_done(st);
    return r < 0 ? r : 0;
}

int kova_db_flavor_specs_set(sqlite3 *conn, const char *flavor_id, const struct kova_db_spec *v,
                             size_t n)
{
    struct specs_set a = {flavor_id, v, n};
    return kova_db_txn_conn(conn, specs_set_txn, &a);
}

int kova_db_flavor_spec_delete(sqlite3 *conn, const char *flavor_id, const char *key)
{
    return db_exec_found(conn, "DELETE FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?",
                         DB_ARGS(DB_TEXT(flavor_id), DB_TEXT(key)));
}

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

static void read_flavor(sqlite3_stmt *st, struct kova_db_flavor *f)
{
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
}

int kova_db_flavor_get(sqlite3 *conn, const char *id, struct kova_db_flavor *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " FLAVOR_COLS " FROM flavors WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r == 0) {
        read_flavor(st, out);
        kova_db_done(st);
    }
    return r;
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
    sqlite3_stmt *st = kova_db_prepare(conn, sql);
    if (!st)
        return -EIO;
    sqlite3_bind_int(st, 1, f->is_public < 0 ? -1 : f->is_public != 0);
    sqlite3_bind_int64(st, 2, f->min_ram);
    sqlite3_bind_int64(st, 3, f->min_disk);
    struct kova_db_flavor *v = NULL;
    size_t len = 0, cap = 0;
    bool seen_marker = f->marker == NULL;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!seen_marker) {
            const unsigned char *id = sqlite3_column_text(st, 0);
            if (id && strcmp((const char *)id, f->marker) == 0)
                seen_marker = true;
            continue;
        }
        if (f->limit >= 0 && (long long)len >= f->limit)
            break;
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        read_flavor(st, &v[len++]);
    }
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
    if (r == 0 && !seen_marker)
        r = -ENOENT;
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

static int create_txn(sqlite3 *conn, void *arg)
{
    const struct kova_db_flavor *f = arg;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT 1 FROM flavors WHERE id = ?1 UNION ALL "
                                             "SELECT 2 FROM flavors WHERE name = ?2");
    if (st) {
        sqlite3_bind_text(st, 1, f->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, f->name, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r == 0) {
        r = sqlite3_column_int(st, 0) == 1 ? -EEXIST : -ENOTUNIQ;
        kova_db_done(st);
    }
    if (r != -ENOENT)
        return r;
    char now[32];
    db_now_iso(now, true);
    st = kova_db_prepare(conn, "INSERT INTO flavors (id, name, ram, vcpus, disk, ephemeral, "
                               "swap, rxtx_factor, is_public, created_at) VALUES (?,?,?,?,?,?,?,"
                               "?,?,?)");
    if (st) {
        sqlite3_bind_text(st, 1, f->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, f->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, f->ram);
        sqlite3_bind_int64(st, 4, f->vcpus);
        sqlite3_bind_int64(st, 5, f->disk);
        sqlite3_bind_int64(st, 6, f->ephemeral);
        sqlite3_bind_int64(st, 7, f->swap);
        sqlite3_bind_double(st, 8, f->rxtx_factor);
        sqlite3_bind_int(st, 9, f->is_public);
        sqlite3_bind_text(st, 10, now, -1, SQLITE_TRANSIENT);
    }
    r = db_step_write(conn, st);
    return r < 0 ? r : 0;
}

int kova_db_flavor_create(sqlite3 *conn, const struct kova_db_flavor *f)
{
    return kova_db_txn_conn(conn, create_txn, (void *)f);
}

int kova_db_flavor_delete(sqlite3 *conn, const char *id)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "DELETE FROM flavors WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

/* ---- extra specs ---- */

static void read_spec(sqlite3_stmt *st, struct kova_db_spec *s)
{
    db_copy_col(s->key, sizeof(s->key), st, 0);
    db_copy_col(s->value, sizeof(s->value), st, 1);
}

int kova_db_flavor_specs(sqlite3 *conn, const char *flavor_id, struct kova_db_spec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT key, value FROM flavor_extra_specs WHERE "
                                             "flavor_id = ? ORDER BY key");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, flavor_id, -1, SQLITE_TRANSIENT);
    struct kova_db_spec *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        read_spec(st, &v[len++]);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

int kova_db_flavor_spec_get(sqlite3 *conn, const char *flavor_id, const char *key,
                            struct kova_db_spec *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT key, value FROM flavor_extra_specs WHERE "
                                             "flavor_id = ? AND key = ?");
    if (st) {
        sqlite3_bind_text(st, 1, flavor_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r == 0) {
        read_spec(st, out);
        kova_db_done(st);
    }
    return r;
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
    for (size_t i = 0; i < a->n && r == 0; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, a->flavor_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, a->v[i].key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, a->v[i].value, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            r = kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    }
    kova_db_done(st);
    return r;
}

int kova_db_flavor_specs_set(sqlite3 *conn, const char *flavor_id, const struct kova_db_spec *v,
                             size_t n)
{
    struct specs_set a = {flavor_id, v, n};
    return kova_db_txn_conn(conn, specs_set_txn, &a);
}

int kova_db_flavor_spec_delete(sqlite3 *conn, const char *flavor_id, const char *key)
{
    sqlite3_stmt *st =
        kova_db_prepare(conn, "DELETE FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?");
    if (st) {
        sqlite3_bind_text(st, 1, flavor_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

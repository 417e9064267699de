/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the images table: the Glance API's rows and what compute boots (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one list of the columns struct kova_db_image holds, and its reader. */
#define IMAGE_COLS                                                                                 \
    "id, name, owner, status, visibility, disk_format, container_format, size, checksum, "         \
    "os_hash_algo, os_hash_value, min_disk, min_ram, protected, properties, tags, created_at, "    \
    "updated_at"

enum {
    I_ID,
    I_NAME,
    I_OWNER,
    I_STATUS,
    I_VIS,
    I_DISK_FMT,
    I_CONT_FMT,
    I_SIZE,
    I_CHECKSUM,
    I_HASH_ALGO,
    I_HASH,
    I_MIN_DISK,
    I_MIN_RAM,
    I_PROTECTED,
    I_PROPS,
    I_TAGS,
    I_CREATED,
    I_UPDATED,
};

/* Who may see an image: ?8 the caller's project, ?9 whether the caller is an administrator. */
#define VISIBLE_SQL "(visibility IN ('public','community') OR owner = ?8 OR ?9)"

static bool copy_opt(char *dst, size_t len, sqlite3_stmt *st, int c)
{
    db_copy_col(dst, len, st, c);
    return sqlite3_column_type(st, c) != SQLITE_NULL;
}

static int read_image(sqlite3_stmt *st, void *dst)
{
    struct kova_db_image *im = dst;
    memset(im, 0, sizeof(*im));
    db_copy_col(im->id, sizeof(im->id), st, I_ID);
    im->has_name = copy_opt(im->name, sizeof(im->name), st, I_NAME);
    im->has_owner = copy_opt(im->owner, sizeof(im->owner), st, I_OWNER);
    db_copy_col(im->status, sizeof(im->status), st, I_STATUS);
    db_copy_col(im->visibility, sizeof(im->visibility), st, I_VIS);
    im->has_disk_format = copy_opt(im->disk_format, sizeof(im->disk_format), st, I_DISK_FMT);
    im->has_container_format =
        copy_opt(im->container_format, sizeof(im->container_format), st, I_CONT_FMT);
    im->has_size = sqlite3_column_type(st, I_SIZE) != SQLITE_NULL;
    im->size = sqlite3_column_int64(st, I_SIZE);
    im->has_checksum = copy_opt(im->checksum, sizeof(im->checksum), st, I_CHECKSUM);
    im->has_os_hash_algo = copy_opt(im->os_hash_algo, sizeof(im->os_hash_algo), st, I_HASH_ALGO);
    im->has_os_hash_value = copy_opt(im->os_hash_value, sizeof(im->os_hash_value), st, I_HASH);
    im->min_disk = sqlite3_column_int64(st, I_MIN_DISK);
    im->min_ram = sqlite3_column_int64(st, I_MIN_RAM);
    im->is_protected = sqlite3_column_int(st, I_PROTECTED) != 0;
    db_copy_col(im->created_at, sizeof(im->created_at), st, I_CREATED);
    db_copy_col(im->updated_at, sizeof(im->updated_at), st, I_UPDATED);
    /* properties and tags: one block, so that free(properties) releases both */
    const char *p = (const char *)sqlite3_column_text(st, I_PROPS);
    size_t pl = p ? strlen(p) : 2;
    const char *t = (const char *)sqlite3_column_text(st, I_TAGS);
    size_t tl = t ? strlen(t) : 2;
    char *b = malloc(pl + tl + 2);
    if (!b)
        return -ENOMEM;
    memcpy(b, p ? p : "{}", pl + 1);
    memcpy(b + pl + 1, t ? t : "[]", tl + 1);
    im->properties = b;
    im->tags = b + pl + 1;
    return 0;
}

void kova_db_image_free(struct kova_db_image *im)
{
    free(im->properties);
    im->properties = im->tags = NULL;
}

static void drop_image(void *im)
{
    kova_db_image_free(im);
}

static const struct db_rows image_rows = {sizeof(struct kova_db_image), read_image, drop_image};

void kova_db_image_list_free(struct kova_db_image *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kova_db_image_free(&v[i]);
    free(v);
}

int kova_db_image_get(sqlite3 *conn, const char *id, struct kova_db_image *out)
{
    memset(out, 0, sizeof(*out));
    return db_get(conn, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1", DB_ARGS(DB_TEXT(id)),
                  read_image, out);
}

int kova_db_image_get_visible(sqlite3 *conn, const char *id, const char *project_id, bool is_admin,
                              struct kova_db_image *out)
{
    memset(out, 0, sizeof(*out));
    return db_get(conn, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1 AND " VISIBLE_SQL,
                  DB_ARGS([0] = DB_TEXT(id), [7] = DB_TEXT(project_id), [8] = DB_INT(is_admin)),
                  read_image, out);
}

/* The seq (creation order) of an image. -ENOENT when there is none. */
static int image_seq(sqlite3 *conn, const char *id, long long *seq)
{
    return db_get(conn, "SELECT seq FROM images WHERE id = ?", DB_ARGS(DB_TEXT(id)), db_read_int64,
                  seq);
}

static const struct {
    const char *name, *expr;
} image_sort_keys[] = {
    {"created_at", "seq"}, /* creation order */
    {"updated_at", "updated_at"},
    {"name", "COALESCE(name, '')"},
    {"status", "status"},
    {"container_format", "COALESCE(container_format, '')"},
    {"disk_format", "COALESCE(disk_format, '')"},
    {"size", "COALESCE(size, -1)"},
    {"id", "id"},
};
#define N_IMAGE_SORT_KEYS ((int)(sizeof(image_sort_keys) / sizeof(image_sort_keys[0])))

int kova_db_image_sort_key(const char *name)
{
    for (int i = 0; name && i < N_IMAGE_SORT_KEYS; i++)
        if (!strcmp(image_sort_keys[i].name, name))
            return i;
    return -EINVAL;
}

/* " AND col OP ?p" for a time comparison; "" for none. NULL for a bad op. */
static const char *cmp_sql(enum kova_db_cmp op)
{
    switch (op) {
    case KOVA_DB_ANY:
        return "";
    case KOVA_DB_EQ:
        return " = ";
    case KOVA_DB_NEQ:
        return " <> ";
    case KOVA_DB_GT:
        return " > ";
    case KOVA_DB_GTE:
        return " >= ";
    case KOVA_DB_LT:
        return " < ";
    case KOVA_DB_LTE:
        return " <= ";
    }
    return NULL;
}

int kova_db_image_list(sqlite3 *conn, const struct kova_db_image_filter *f,
                       struct kova_db_image **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    long long mseq;
    int r;
    if (f->marker && (r = image_seq(conn, f->marker, &mseq)) < 0)
        return r;
    const char *expr[KOVA_DB_SORT_MAX + 1];
    bool desc[KOVA_DB_SORT_MAX + 1];
    int k = 0;
    const char *cc = cmp_sql(f->created.op), *cu = cmp_sql(f->updated.op);
    if (f->nsort < 0 || f->nsort > KOVA_DB_SORT_MAX || (f->nsort && !f->sort) || !cc || !cu)
        return -EINVAL;
    for (int i = 0; i < f->nsort; i++) {
        if (f->sort[i].key < 0 || f->sort[i].key >= N_IMAGE_SORT_KEYS)
            return -EINVAL;
        expr[k] = image_sort_keys[f->sort[i].key].expr;
        desc[k++] = f->sort[i].desc;
    }
    expr[k] = "seq";
    desc[k] = f->nsort ? f->sort[0].desc : true;
    k++;
    char sql[8192];
    size_t len = 0;
    /* ?1 name ?2 status ?3 visibility ?4 marker ?5 owner ?6 limit ?7 unused ?8 project ?9 admin
     * ?10 disk_format ?11 container_format ?12 size_min ?13 size_max ?14 protected
     * ?15 created ?16 updated */
    bool ok = db_put(sql, sizeof(sql), &len,
                     "SELECT " IMAGE_COLS " FROM images WHERE " VISIBLE_SQL
                     " AND (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS "
                     "NULL OR visibility = ?3) AND (?5 IS NULL OR owner = ?5) AND (?10 IS NULL "
                     "OR disk_format = ?10) AND (?11 IS NULL OR container_format = ?11) AND (?12 "
                     "IS NULL OR size >= ?12) AND (?13 IS NULL OR size <= ?13) AND (?14 IS NULL "
                     "OR protected = ?14)");
    if (f->created.op != KOVA_DB_ANY)
        ok = ok && db_put(sql, sizeof(sql), &len, " AND created_at") &&
             db_put(sql, sizeof(sql), &len, cc) && db_put(sql, sizeof(sql), &len, "?15");
    if (f->updated.op != KOVA_DB_ANY)
        ok = ok && db_put(sql, sizeof(sql), &len, " AND updated_at") &&
             db_put(sql, sizeof(sql), &len, cu) && db_put(sql, sizeof(sql), &len, "?16");
    if (!ok ||
        (r = db_sql_order(sql, sizeof(sql), &len, "images", f->marker ? "id = ?4" : NULL, expr,
                          desc, k)) < 0 ||
        !db_put(sql, sizeof(sql), &len, " LIMIT ?6"))
        return -E2BIG;
    return db_collect(conn, sql,
                      DB_ARGS(DB_TEXT(f->name), DB_TEXT(f->status), DB_TEXT(f->visibility),
                              DB_TEXT(f->marker), DB_TEXT(f->owner),
                              DB_INT(f->limit < 0 ? -1 : f->limit), [7] = DB_TEXT(f->project_id),
                              DB_INT(f->is_admin), DB_TEXT(f->disk_format),
                              DB_TEXT(f->container_format),
                              f->has_size_min ? DB_INT(f->size_min) : DB_NULL,
                              f->has_size_max ? DB_INT(f->size_max) : DB_NULL,
                              f->protected_is == KOVA_DB_PROTECTED_ANY
                                  ? DB_NULL
                                  : DB_INT(f->protected_is == KOVA_DB_PROTECTED_YES),
                              /* bound only when the SQL names them (?15, ?16) */
                              DB_TEXT(f->created.op != KOVA_DB_ANY ? f->created.at : NULL),
                              DB_TEXT(f->updated.op != KOVA_DB_ANY ? f->updated.at : NULL)),
                      &image_rows, (void **)out, n);
}

/* The columns a client sets (create and update) as ?2 name, ?3 visibility, ?4 disk_format,
 * ?5 container_format, ?6 min_disk, ?7 min_ram, ?8 protected, ?9 properties, ?10 tags: v[1..9]. */
static void settable(struct db_val *v, const struct kova_db_image *im)
{
    v[1] = DB_TEXT(im->has_name ? im->name : NULL);
    v[2] = DB_TEXT(im->visibility);
    v[3] = DB_TEXT(im->has_disk_format ? im->disk_format : NULL);
    v[4] = DB_TEXT(im->has_container_format ? im->container_format : NULL);
    v[5] = DB_INT(im->min_disk);
    v[6] = DB_INT(im->min_ram);
    v[7] = DB_INT(im->is_protected);
    v[8] = DB_TEXT(im->properties ? im->properties : "{}");
    v[9] = DB_TEXT(im->tags ? im->tags : "[]");
}

int kova_db_image_create(sqlite3 *conn, struct kova_db_image *im)
{
    char now[32];
    db_now_iso(now, true);
    struct db_val v[12] = {DB_TEXT(im->id)};
    settable(v, im);
    v[10] = DB_TEXT(im->has_owner ? im->owner : NULL);
    v[11] = DB_TEXT(now);
    int r = db_exec_bound(
        conn,
        "INSERT INTO images (id, name, visibility, disk_format, container_format, min_disk, "
        "min_ram, protected, properties, tags, owner, status, created_at, updated_at) VALUES (?1, "
        "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued', ?12, ?12)",
        v, 12);
    if (r < 0)
        return r;
    snprintf(im->status, sizeof(im->status), "queued");
    snprintf(im->created_at, sizeof(im->created_at), "%s", now);
    snprintf(im->updated_at, sizeof(im->updated_at), "%s", now);
    return 0;
}

int kova_db_image_update(sqlite3 *conn, struct kova_db_image *im)
{
    char now[32];
    db_now_iso(now, true);
    struct db_val v[11] = {DB_TEXT(im->id)};
    settable(v, im);
    v[10] = DB_TEXT(now);
    int r = db_exec_found(conn,
                          "UPDATE images SET name = ?2, visibility = ?3, disk_format = ?4, "
                          "container_format = ?5, min_disk = ?6, min_ram = ?7, protected = ?8, "
                          "properties = ?9, tags = ?10, updated_at = ?11 WHERE id = ?1",
                          v, 11);
    if (r < 0)
        return r;
    snprintf(im->updated_at, sizeof(im->updated_at), "%s", now);
    return 0;
}

int kova_db_image_set_status(sqlite3 *conn, const char *id, const char *from, const char *to)
{
    return db_exec_bound(conn,
                         "UPDATE images SET status = ?3, updated_at = "
                         "strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 AND status = ?2",
                         DB_ARGS(DB_TEXT(id), DB_TEXT(from), DB_TEXT(to)));
}

int kova_db_image_activate(sqlite3 *conn, const char *id, const char *from, long long size,
                           const char *md5, const char *sha512)
{
    return db_exec_found(
        conn,
        "UPDATE images SET status = 'active', size = ?2, checksum = ?3, "
        "os_hash_algo = 'sha512', os_hash_value = ?4, updated_at = "
        "strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 AND status = ?5",
        DB_ARGS(DB_TEXT(id), DB_INT(size), DB_TEXT(md5), DB_TEXT(sha512), DB_TEXT(from)));
}

int kova_db_image_delete(sqlite3 *conn, const char *id)
{
    return db_exec_found(conn, "DELETE FROM images WHERE id = ?", DB_ARGS(DB_TEXT(id)));
}

int kova_db_image_exists(sqlite3 *conn, const char *id)
{
    long long seq;
    int r = image_seq(conn, id, &seq);
    return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

static int read_id(sqlite3_stmt *st, void *dst)
{
    db_copy_col(dst, KOVA_DB_ID_MAX, st, 0);
    return 0;
}

static const struct db_rows id_rows = {KOVA_DB_ID_MAX, read_id, NULL};

struct unfinished {
    char (*v)[KOVA_DB_ID_MAX];
    size_t len;
};

static int reset_txn(sqlite3 *conn, void *arg)
{
    struct unfinished *u = arg;
    free(u->v); /* a retry starts over */
    int r = db_collect(conn,
                       "SELECT id FROM images WHERE status IN ('saving', 'importing') ORDER BY seq",
                       NULL, 0, &id_rows, (void **)&u->v, &u->len);
    if (r == 0)
        r = kova_db_exec(conn, "UPDATE images SET status = 'queued' WHERE status IN ('saving', "
                               "'importing')");
    return r;
}

int kova_db_image_reset_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], size_t *n)
{
    struct unfinished u = {NULL, 0};
    int r = kova_db_txn_conn(conn, reset_txn, &u);
    if (r < 0) {
        free(u.v);
        *ids = NULL;
        *n = 0;
        return r;
    }
    *ids = u.v;
    *n = u.len;
    return 0;
}

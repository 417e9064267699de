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

static int read_image(sqlite3_stmt *st, struct kova_db_image *im)
{
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

void kova_db_image_list_free(struct kova_db_image *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kova_db_image_free(&v[i]);
    free(v);
}

static int get_one(sqlite3_stmt *st, struct kova_db_image *out)
{
    int r = db_step_row(st);
    if (r == 0) {
        r = read_image(st, out);
        kova_db_done(st);
    }
    return r;
}

int kova_db_image_get(sqlite3 *conn, const char *id, struct kova_db_image *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return get_one(st, out);
}

int kova_db_image_get_visible(sqlite3 *conn, const char *id, const char *project_id, bool is_admin,
                              struct kova_db_image *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " IMAGE_COLS " FROM images WHERE id = ?1 "
                                             "AND " VISIBLE_SQL);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 8, project_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 9, is_admin);
    }
    return get_one(st, out);
}

/* The seq (creation order) of an image. -ENOENT when there is none. */
static int image_seq(sqlite3 *conn, const char *id, sqlite3_int64 *seq)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT seq FROM images WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r == 0) {
        *seq = sqlite3_column_int64(st, 0);
        kova_db_done(st);
    }
    return r;
}

int kova_db_image_list(sqlite3 *conn, const struct kova_db_image_filter *f,
                       struct kova_db_image **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_int64 mseq = -1;
    int r;
    if (f->marker && (r = image_seq(conn, f->marker, &mseq)) < 0)
        return r;
    sqlite3_stmt *st = kova_db_prepare(
        conn, "SELECT " IMAGE_COLS " FROM images WHERE " VISIBLE_SQL
              " AND (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR "
              "visibility = ?3) AND (?4 < 0 OR seq < ?4) AND (?5 IS NULL OR owner = ?5) ORDER BY "
              "seq DESC LIMIT ?6");
    if (!st)
        return -EIO;
    if (f->name)
        sqlite3_bind_text(st, 1, f->name, -1, SQLITE_TRANSIENT);
    if (f->status)
        sqlite3_bind_text(st, 2, f->status, -1, SQLITE_TRANSIENT);
    if (f->visibility)
        sqlite3_bind_text(st, 3, f->visibility, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, mseq);
    if (f->owner)
        sqlite3_bind_text(st, 5, f->owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, f->limit < 0 ? -1 : f->limit);
    sqlite3_bind_text(st, 8, f->project_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 9, f->is_admin);
    struct kova_db_image *v = NULL;
    size_t len = 0, cap = 0;
    int rc;
    r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        if ((r = read_image(st, &v[len])) < 0)
            break;
        len++;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
    if (r < 0) {
        kova_db_image_list_free(v, len);
        return r;
    }
    *out = v;
    *n = len;
    return 0;
}

/* Binds the columns a client sets (create and update): ?2 name, ?3 visibility, ?4 disk_format,
 * ?5 container_format, ?6 min_disk, ?7 min_ram, ?8 protected, ?9 properties, ?10 tags. */
static void bind_settable(sqlite3_stmt *st, const struct kova_db_image *im)
{
    if (im->has_name)
        sqlite3_bind_text(st, 2, im->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, im->visibility, -1, SQLITE_TRANSIENT);
    if (im->has_disk_format)
        sqlite3_bind_text(st, 4, im->disk_format, -1, SQLITE_TRANSIENT);
    if (im->has_container_format)
        sqlite3_bind_text(st, 5, im->container_format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, im->min_disk);
    sqlite3_bind_int64(st, 7, im->min_ram);
    sqlite3_bind_int(st, 8, im->is_protected);
    sqlite3_bind_text(st, 9, im->properties ? im->properties : "{}", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 10, im->tags ? im->tags : "[]", -1, SQLITE_TRANSIENT);
}

int kova_db_image_create(sqlite3 *conn, struct kova_db_image *im)
{
    char now[32];
    db_now_iso(now, true);
    sqlite3_stmt *st = kova_db_prepare(
        conn, "INSERT INTO images (id, name, visibility, disk_format, container_format, min_disk, "
              "min_ram, protected, properties, tags, owner, status, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued', ?12, ?12)");
    if (st) {
        sqlite3_bind_text(st, 1, im->id, -1, SQLITE_TRANSIENT);
        bind_settable(st, im);
        if (im->has_owner)
            sqlite3_bind_text(st, 11, im->owner, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 12, now, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
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
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE images SET name = ?2, visibility = ?3, disk_format = ?4, container_format = "
              "?5, min_disk = ?6, min_ram = ?7, protected = ?8, properties = ?9, tags = ?10, "
              "updated_at = ?11 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, im->id, -1, SQLITE_TRANSIENT);
        bind_settable(st, im);
        sqlite3_bind_text(st, 11, now, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    snprintf(im->updated_at, sizeof(im->updated_at), "%s", now);
    return 0;
}

int kova_db_image_set_status(sqlite3 *conn, const char *id, const char *from, const char *to)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "UPDATE images SET status = ?3, updated_at = "
                                             "strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 "
                                             "AND status = ?2");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, from, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, to, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

int kova_db_image_activate(sqlite3 *conn, const char *id, const char *from, long long size,
                           const char *md5, const char *sha512)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "UPDATE images SET status = 'active', size = ?2, "
                                             "checksum = ?3, os_hash_algo = 'sha512', "
                                             "os_hash_value = ?4, updated_at = "
                                             "strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 "
                                             "AND status = ?5");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, size);
        sqlite3_bind_text(st, 3, md5, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, sha512, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, from, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int kova_db_image_delete(sqlite3 *conn, const char *id)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "DELETE FROM images WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int kova_db_image_exists(sqlite3 *conn, const char *id)
{
    sqlite3_int64 seq;
    int r = image_seq(conn, id, &seq);
    return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

struct unfinished {
    char (*v)[KOVA_DB_ID_MAX];
    size_t len;
};

static int reset_txn(sqlite3 *conn, void *arg)
{
    struct unfinished *u = arg;
    free(u->v); /* a retry starts over */
    u->v = NULL;
    u->len = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT id FROM images WHERE status IN ('saving', "
                                             "'importing') ORDER BY seq");
    if (!st)
        return -EIO;
    size_t cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&u->v, &cap, u->len, sizeof(*u->v))) < 0)
            break;
        db_copy_col(u->v[u->len++], KOVA_DB_ID_MAX, st, 0);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
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

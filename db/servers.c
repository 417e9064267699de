/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the servers and server_metadata tables: the compute manager's rows and the API's
 * view (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one list of the server columns: struct kova_db_server (the compute manager's) and struct
 * kova_db_server_view (the API's) are both read from it, by the indexes below. */
#define SERVER_COLS                                                                                \
    "seq, id, name, project_id, user_id, image_ref, flavor_id, vm_state, task_state, "             \
    "power_state, key_name, availability_zone, config_drive, access_ipv4, access_ipv6, "           \
    "disk_config, host, launched_at, terminated_at, fault_code, fault_message, fault_details, "    \
    "fault_created, created_at, updated_at, vcpus, ram, disk, vmm_pid, vmm_start, kernel_id, "     \
    "ramdisk_id, os_cmdline, (SELECT json_group_object(key, value) FROM server_metadata WHERE "    \
    "server_seq = servers.seq)"

enum {
    C_SEQ,
    C_ID,
    C_NAME,
    C_PROJECT,
    C_USER,
    C_IMAGE,
    C_FLAVOR,
    C_VM_STATE,
    C_TASK_STATE,
    C_POWER,
    C_KEY_NAME,
    C_AZ,
    C_CONFIG_DRIVE,
    C_IPV4,
    C_IPV6,
    C_DISK_CONFIG,
    C_HOST,
    C_LAUNCHED,
    C_TERMINATED,
    C_FAULT_CODE,
    C_FAULT_MSG,
    C_FAULT_DETAILS,
    C_FAULT_CREATED,
    C_CREATED,
    C_UPDATED,
    C_VCPUS,
    C_RAM,
    C_DISK,
    C_VMM_PID,
    C_VMM_START,
    C_KERNEL,
    C_RAMDISK,
    C_CMDLINE,
    C_META, /* the metadata as a JSON object text */
};

static void read_server(sqlite3_stmt *st, struct kova_db_server *w)
{
    memset(w, 0, sizeof(*w));
    db_copy_col(w->id, sizeof(w->id), st, C_ID);
    db_copy_col(w->vm_state, sizeof(w->vm_state), st, C_VM_STATE);
    w->has_task = sqlite3_column_type(st, C_TASK_STATE) != SQLITE_NULL;
    db_copy_col(w->task_state, sizeof(w->task_state), st, C_TASK_STATE);
    db_copy_col(w->image_ref, sizeof(w->image_ref), st, C_IMAGE);
    w->vcpus = sqlite3_column_int64(st, C_VCPUS);
    w->ram = sqlite3_column_int64(st, C_RAM);
    w->disk = sqlite3_column_int64(st, C_DISK);
    w->vmm_pid = (pid_t)sqlite3_column_int64(st, C_VMM_PID);
    w->vmm_start = (unsigned long long)sqlite3_column_int64(st, C_VMM_START);
    db_copy_col(w->kernel_id, sizeof(w->kernel_id), st, C_KERNEL);
    db_copy_col(w->ramdisk_id, sizeof(w->ramdisk_id), st, C_RAMDISK);
    db_copy_col(w->cmdline, sizeof(w->cmdline), st, C_CMDLINE);
}

static const char *text(sqlite3_stmt *st, int c)
{
    return (const char *)sqlite3_column_text(st, c);
}

/* The view of the row st is on, its text borrowed from st (valid until st moves on). */
static void read_view(sqlite3_stmt *st, struct kova_db_server_view *v)
{
    memset(v, 0, sizeof(*v));
    v->seq = sqlite3_column_int64(st, C_SEQ);
    v->id = text(st, C_ID);
    v->name = text(st, C_NAME);
    v->project_id = text(st, C_PROJECT);
    v->user_id = text(st, C_USER);
    v->image_ref = text(st, C_IMAGE);
    v->flavor_id = text(st, C_FLAVOR);
    v->vm_state = text(st, C_VM_STATE);
    v->task_state = text(st, C_TASK_STATE);
    v->power_state = sqlite3_column_int(st, C_POWER);
    v->key_name = text(st, C_KEY_NAME);
    v->availability_zone = text(st, C_AZ);
    v->config_drive = text(st, C_CONFIG_DRIVE);
    v->access_ipv4 = text(st, C_IPV4);
    v->access_ipv6 = text(st, C_IPV6);
    v->disk_config = text(st, C_DISK_CONFIG);
    v->host = text(st, C_HOST);
    v->launched_at = text(st, C_LAUNCHED);
    v->terminated_at = text(st, C_TERMINATED);
    v->has_fault = sqlite3_column_type(st, C_FAULT_CODE) != SQLITE_NULL;
    v->fault_code = sqlite3_column_int(st, C_FAULT_CODE);
    v->fault_message = text(st, C_FAULT_MSG);
    v->fault_details = text(st, C_FAULT_DETAILS);
    v->fault_created = text(st, C_FAULT_CREATED);
    v->created_at = text(st, C_CREATED);
    v->updated_at = text(st, C_UPDATED);
    v->vcpus = sqlite3_column_int64(st, C_VCPUS);
    v->ram = sqlite3_column_int64(st, C_RAM);
    v->disk = sqlite3_column_int64(st, C_DISK);
    v->metadata = text(st, C_META);
    if (!v->metadata)
        v->metadata = "{}";
}

/* Copies the text of a borrowed view into one malloc'd block (v->mem). */
static int view_own(struct kova_db_server_view *v)
{
    const char **t[] = {
        &v->id,
        &v->name,
        &v->project_id,
        &v->user_id,
        &v->image_ref,
        &v->flavor_id,
        &v->vm_state,
        &v->task_state,
        &v->key_name,
        &v->availability_zone,
        &v->config_drive,
        &v->access_ipv4,
        &v->access_ipv6,
        &v->disk_config,
        &v->host,
        &v->launched_at,
        &v->terminated_at,
        &v->fault_message,
        &v->fault_details,
        &v->fault_created,
        &v->created_at,
        &v->updated_at,
        &v->metadata,
    };
    size_t n = sizeof(t) / sizeof(t[0]), len = 1;
    for (size_t i = 0; i < n; i++)
        len += *t[i] ? strlen(*t[i]) + 1 : 0;
    char *p = malloc(len);
    if (!p)
        return -ENOMEM;
    v->mem = p;
    for (size_t i = 0; i < n; i++) {
        if (!*t[i])
            continue;
        size_t l = strlen(*t[i]) + 1;
        memcpy(p, *t[i], l);
        *t[i] = p;
        p += l;
    }
    return 0;
}

void kova_db_server_view_free(struct kova_db_server_view *v)
{
    free(v->mem);
    memset(v, 0, sizeof(*v));
}

int kova_db_server_view_get(sqlite3 *conn, const char *id, const char *project_id,
                            struct kova_db_server_view *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " SERVER_COLS " FROM servers WHERE id = ?1 "
                                             "AND (?2 IS NULL OR project_id = ?2)");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (project_id)
            sqlite3_bind_text(st, 2, project_id, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_row(st);
    if (r == 0) {
        read_view(st, out);
        r = view_own(out);
        kova_db_done(st);
        if (r < 0)
            memset(out, 0, sizeof(*out));
    }
    return r;
}

int kova_db_server_view_each(sqlite3 *conn, const struct kova_db_server_filter *f,
                             int (*fn)(const struct kova_db_server_view *v, void *arg), void *arg)
{
    sqlite3_int64 mseq = -1;
    sqlite3_stmt *st;
    int r;
    if (f->marker) {
        st = kova_db_prepare(conn, "SELECT seq FROM servers WHERE id = ?1 AND (?2 IS NULL OR "
                                   "project_id = ?2)");
        if (st) {
            sqlite3_bind_text(st, 1, f->marker, -1, SQLITE_TRANSIENT);
            if (f->project_id)
                sqlite3_bind_text(st, 2, f->project_id, -1, SQLITE_TRANSIENT);
        }
        if ((r = db_step_row(st)) < 0)
            return r;
        mseq = sqlite3_column_int64(st, 0);
        kova_db_done(st);
    }
    st = kova_db_prepare(conn, "SELECT " SERVER_COLS " FROM servers WHERE (?1 IS NULL OR "
                               "project_id = ?1) AND (?2 < 0 OR seq < ?2) AND (?3 IS NULL OR "
                               "image_ref = ?3) AND (?4 IS NULL OR flavor_id = ?4) ORDER BY seq "
                               "DESC");
    if (!st)
        return -EIO;
    if (f->project_id)
        sqlite3_bind_text(st, 1, f->project_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, mseq);
    if (f->image_ref)
        sqlite3_bind_text(st, 3, f->image_ref, -1, SQLITE_TRANSIENT);
    if (f->flavor_id)
        sqlite3_bind_text(st, 4, f->flavor_id, -1, SQLITE_TRANSIENT);
    int rc;
    r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct kova_db_server_view v;
        read_view(st, &v);
        if ((r = fn(&v, arg)) != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    kova_db_done(st);
    return r > 0 ? 0 : r;
}

int kova_db_server_get(sqlite3 *conn, const char *id, struct kova_db_server *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " SERVER_COLS " FROM servers WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r == 0) {
        read_server(st, out);
        kova_db_done(st);
    }
    return r;
}

int kova_db_server_list(sqlite3 *conn, struct kova_db_server **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " SERVER_COLS " FROM servers ORDER BY seq");
    if (!st)
        return -EIO;
    struct kova_db_server *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct kova_db_server *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        read_server(st, &v[len++]);
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

int kova_db_server_set_task(sqlite3 *conn, const char *id, const char *task)
{
    char now[32];
    db_now_iso(now, true);
    sqlite3_stmt *st = kova_db_prepare(conn, "UPDATE servers SET task_state = ?2, updated_at = ?3 "
                                             "WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (task)
            sqlite3_bind_text(st, 2, task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

int kova_db_server_claim_build(sqlite3 *conn, const char *id)
{
    char now[32];
    db_now_iso(now, true);
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE servers SET task_state = 'spawning', updated_at = ?2 WHERE id = ?1 AND "
              "vm_state = 'building' AND task_state IS NOT 'deleting'");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

int kova_db_server_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], bool **del, size_t *n)
{
    *ids = NULL;
    *del = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT id, task_state IS 'deleting' FROM servers "
                                             "WHERE task_state IS 'deleting' OR vm_state = "
                                             "'building' ORDER BY seq");
    if (!st)
        return -EIO;
    char(*v)[KOVA_DB_ID_MAX] = NULL;
    bool *d = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            void *nv = realloc(v, nc * sizeof(*v)), *nd = nv ? realloc(d, nc * sizeof(*d)) : NULL;
            if (nv)
                v = nv;
            if (!nv || !nd) {
                r = -ENOMEM;
                break;
            }
            d = nd;
            cap = nc;
        }
        db_copy_col(v[len], KOVA_DB_ID_MAX, st, 0);
        d[len++] = sqlite3_column_int(st, 1) != 0;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = kova_db_errno(rc);
    kova_db_done(st);
    /* a build interrupted after it took the server over starts again from scheduling */
    if (r == 0)
        r = kova_db_exec(conn, "UPDATE servers SET task_state = 'scheduling' WHERE vm_state = "
                               "'building' AND task_state IS NOT 'deleting'");
    if (r < 0) {
        free(v);
        free(d);
        return r;
    }
    *ids = v;
    *del = d;
    *n = len;
    return 0;
}

int kova_db_server_set_vmm(sqlite3 *conn, const char *id, pid_t pid, unsigned long long start)
{
    sqlite3_stmt *st =
        kova_db_prepare(conn, "UPDATE servers SET vmm_pid = ?2, vmm_start = ?3 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (pid > 0) {
            sqlite3_bind_int64(st, 2, pid);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)start);
        }
    }
    return db_step_write(conn, st);
}

int kova_db_server_set_boot(sqlite3 *conn, const char *id, const char *kernel_id,
                            const char *ramdisk_id, const char *cmdline)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "UPDATE servers SET kernel_id = ?2, ramdisk_id = ?3, "
                                             "os_cmdline = ?4 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, kernel_id, -1, SQLITE_TRANSIENT);
        if (ramdisk_id && ramdisk_id[0])
            sqlite3_bind_text(st, 3, ramdisk_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, cmdline, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

static int finish_txn(sqlite3 *conn, void *arg)
{
    const struct kova_db_task_end *e = arg;
    char now[32], nowus[32];
    db_now_iso(now, true);
    db_now_iso(nowus, false);
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE servers SET vm_state = ?3, power_state = ?4, task_state = NULL, "
              "updated_at = ?5, vmm_pid = CASE WHEN ?6 THEN NULL ELSE vmm_pid END, vmm_start = "
              "CASE WHEN ?6 THEN NULL ELSE vmm_start END, launched_at = CASE WHEN ?7 THEN ?5 ELSE "
              "launched_at END, fault_code = CASE WHEN ?8 IS NULL THEN fault_code ELSE ?9 END, "
              "fault_message = coalesce(?8, fault_message), fault_details = coalesce(?8, "
              "fault_details), fault_created = CASE WHEN ?8 IS NULL THEN fault_created ELSE ?5 END "
              "WHERE id = ?1 AND task_state IS ?2");
    if (st) {
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_TRANSIENT);
        if (e->task)
            sqlite3_bind_text(st, 2, e->task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, e->vm_state, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, e->power_state);
        sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 6, e->vmm_gone);
        sqlite3_bind_int(st, 7, e->launched);
        if (e->fault)
            sqlite3_bind_text(st, 8, e->fault, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 9, e->fault_code);
    }
    int r = db_step_write(conn, st);
    if (r < 0)
        return r;
    if (r == 0) {
        /* a delete took over: only the VMM columns matter */
        if (e->vmm_gone) {
            int k = kova_db_server_set_vmm(conn, e->id, 0, 0);
            if (k < 0)
                return k;
        }
        return 0;
    }
    if ((r = db_action_finish(conn, e->id, nowus, e->fault)) < 0)
        return r;
    return 1;
}

int kova_db_server_finish(struct kova_db *db, const struct kova_db_task_end *e)
{
    return kova_db_txn(db, finish_txn, (void *)e);
}

int kova_db_server_record_exit(sqlite3 *conn, const char *id, pid_t pid)
{
    char now[32];
    db_now_iso(now, true);
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE servers SET vm_state = CASE WHEN vm_state IN ('active','paused','suspended') "
              "THEN 'stopped' ELSE vm_state END, power_state = 4, vmm_pid = NULL, vmm_start = "
              "NULL, updated_at = ?3 WHERE id = ?1 AND vmm_pid = ?2");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, pid);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

int kova_db_server_reconcile(sqlite3 *conn, const char *id, const char *vm_state, int power_state,
                             bool alive, const char *fault)
{
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE servers SET vm_state = ?2, power_state = ?3, task_state = NULL, vmm_pid = "
              "CASE WHEN ?4 THEN vmm_pid ELSE NULL END, vmm_start = CASE WHEN ?4 THEN vmm_start "
              "ELSE NULL END, fault_code = CASE WHEN ?5 IS NULL THEN fault_code ELSE 500 END, "
              "fault_message = coalesce(?5, fault_message), fault_details = coalesce(?5, "
              "fault_details), fault_created = CASE WHEN ?5 IS NULL THEN fault_created ELSE "
              "strftime('%Y-%m-%dT%H:%M:%SZ','now') END WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, vm_state, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, power_state);
        sqlite3_bind_int(st, 4, alive);
        if (fault)
            sqlite3_bind_text(st, 5, fault, -1, SQLITE_TRANSIENT);
    }
    return db_step_write(conn, st);
}

int kova_db_server_delete(sqlite3 *conn, const char *id)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "DELETE FROM servers WHERE id = ?1");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return db_step_write(conn, st);
}

int kova_db_server_exists(sqlite3 *conn, const char *id)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT 1 FROM servers WHERE id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    kova_db_done(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : kova_db_errno(rc);
}

/* The seq of a server. -ENOENT when there is none. */
static int server_seq(sqlite3 *conn, const char *id, sqlite3_int64 *seq)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT seq FROM servers WHERE id = ?");
    if (st)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r == 0) {
        *seq = sqlite3_column_int64(st, 0);
        kova_db_done(st);
    }
    return r;
}

/* Adds (or replaces) the n items of a server's metadata. */
static int meta_put(sqlite3 *conn, sqlite3_int64 seq, const struct kova_db_meta *v, size_t n)
{
    if (n == 0)
        return 0;
    sqlite3_stmt *st = kova_db_prepare(
        conn, "INSERT OR REPLACE INTO server_metadata (server_seq, key, value) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, v[i].key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, v[i].value, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            r = kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    }
    kova_db_done(st);
    return r;
}

struct create_args {
    const struct kova_db_server_new *s;
    const char *const *ids;
    size_t count;
};

static int create_txn(sqlite3 *conn, void *arg)
{
    const struct create_args *a = arg;
    const struct kova_db_server_new *s = a->s;
    char now[32], nowus[32];
    db_now_iso(now, true);
    db_now_iso(nowus, false);
    const struct kova_db_requester q = {s->request_id, s->user_id, s->project_id};
    sqlite3_stmt *st = NULL;
    int r = 0;
    for (size_t i = 0; i < a->count && r == 0; i++) {
        char name[KOVA_DB_NAME_MAX + 24];
        if (a->count > 1)
            snprintf(name, sizeof(name), "%s-%zu", s->name, i + 1);
        else
            snprintf(name, sizeof(name), "%s", s->name);
        st = kova_db_prepare(conn, "INSERT INTO servers (id, name, project_id, user_id, "
                                   "image_ref, flavor_id, vcpus, ram, disk, vm_state, task_state, "
                                   "power_state, key_name, key_data, user_data, availability_zone, "
                                   "config_drive, access_ipv4, access_ipv6, disk_config, host, "
                                   "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'building',"
                                   "'scheduling',0,?,?,?,?,?,?,?,?,?,?,?)");
        if (st) {
            const char *t[] = {a->ids[i],
                               name,
                               s->project_id,
                               s->user_id,
                               s->image_ref,
                               s->flavor_id,
                               NULL,
                               NULL,
                               NULL,
                               s->key_name,
                               s->key_data,
                               s->user_data,
                               s->availability_zone,
                               s->config_drive,
                               s->access_ipv4,
                               s->access_ipv6,
                               s->disk_config,
                               s->host,
                               now,
                               now};
            for (int k = 0; k < (int)(sizeof(t) / sizeof(t[0])); k++)
                if (t[k])
                    sqlite3_bind_text(st, k + 1, t[k], -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 7, s->vcpus);
            sqlite3_bind_int64(st, 8, s->ram);
            sqlite3_bind_int64(st, 9, s->disk);
        }
        if ((r = db_step_write(conn, st)) < 0)
            break;
        sqlite3_int64 seq = sqlite3_last_insert_rowid(conn);
        r = meta_put(conn, seq, s->metadata, s->nmeta);
        if (r == 0)
            r = db_action_insert(conn, seq, "create", "compute__do_build_and_run_instance", &q,
                                 nowus);
    }
    return r < 0 ? r : 0;
}

int kova_db_server_create(sqlite3 *conn, const struct kova_db_server_new *s, const char *const *ids,
                          size_t count)
{
    struct create_args a = {s, ids, count};
    return kova_db_txn_conn(conn, create_txn, &a);
}

int kova_db_server_update(sqlite3 *conn, const char *id, const char *project_id,
                          const struct kova_db_server_edit *e)
{
    char now[32];
    db_now_iso(now, true);
    sqlite3_stmt *st = kova_db_prepare(
        conn, "UPDATE servers SET name = coalesce(?2, name), access_ipv4 = coalesce(?3, "
              "access_ipv4), access_ipv6 = coalesce(?4, access_ipv6), disk_config = coalesce(?5, "
              "disk_config), updated_at = ?6 WHERE id = ?1 AND (?7 IS NULL OR project_id = ?7)");
    if (st) {
        const char *t[] = {id,  e->name,   e->access_ipv4, e->access_ipv6, e->disk_config,
                           now, project_id};
        for (int k = 0; k < 7; k++)
            if (t[k])
                sqlite3_bind_text(st, k + 1, t[k], -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int kova_db_server_set_image(sqlite3 *conn, const char *id, const char *image_ref, const char *name)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "UPDATE servers SET image_ref = ?2, name = "
                                             "coalesce(?3, name) WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, image_ref, -1, SQLITE_TRANSIENT);
        if (name)
            sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int kova_db_server_meta_list(sqlite3 *conn, const char *id, struct kova_db_meta **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT m.key, m.value FROM server_metadata m JOIN "
                                             "servers s ON s.seq = m.server_seq WHERE s.id = ? "
                                             "ORDER BY m.key");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    struct kova_db_meta *v = NULL;
    size_t len = 0, cap = 0;
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = db_grow((void **)&v, &cap, len, sizeof(*v))) < 0)
            break;
        db_copy_col(v[len].key, sizeof(v[len].key), st, 0);
        db_copy_col(v[len].value, sizeof(v[len].value), st, 1);
        len++;
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

struct meta_args {
    const char *id;
    const struct kova_db_meta *v;
    size_t n;
    bool replace;
    long long quota;
};

static int meta_set_txn(sqlite3 *conn, void *arg)
{
    const struct meta_args *a = arg;
    sqlite3_int64 seq = 0;
    int r = server_seq(conn, a->id, &seq);
    if (r < 0)
        return r;
    if (a->replace) {
        sqlite3_stmt *st =
            kova_db_prepare(conn, "DELETE FROM server_metadata WHERE server_seq = ?");
        if (st)
            sqlite3_bind_int64(st, 1, seq);
        if ((r = db_step_write(conn, st)) < 0)
            return r;
    }
    if ((r = meta_put(conn, seq, a->v, a->n)) < 0)
        return r;
    if (a->quota < 0)
        return 0;
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT count(*) FROM server_metadata WHERE "
                                             "server_seq = ?");
    if (st)
        sqlite3_bind_int64(st, 1, seq);
    if ((r = db_step_row(st)) < 0)
        return r;
    long long count = sqlite3_column_int64(st, 0);
    kova_db_done(st);
    return count > a->quota ? -EDQUOT : 0;
}

int kova_db_server_meta_set(sqlite3 *conn, const char *id, const struct kova_db_meta *v, size_t n,
                            bool replace, long long quota)
{
    struct meta_args a = {id, v, n, replace, quota};
    return kova_db_txn_conn(conn, meta_set_txn, &a);
}

int kova_db_server_meta_delete(sqlite3 *conn, const char *id, const char *key)
{
    sqlite3_stmt *st =
        kova_db_prepare(conn, "DELETE FROM server_metadata WHERE server_seq = "
                              "(SELECT seq FROM servers WHERE id = ?1) AND key = ?2");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    }
    int r = db_step_write(conn, st);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

/* Runs one of the USAGE_SUMS statements, key bound to its ?. */
static int usage(sqlite3 *conn, const char *sql, const char *key, struct kova_db_server_usage *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = kova_db_prepare(conn, sql);
    if (st)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int r = db_step_row(st);
    if (r == 0) {
        out->count = sqlite3_column_int64(st, 0);
        out->vcpus = sqlite3_column_int64(st, 1);
        out->ram = sqlite3_column_int64(st, 2);
        out->tasks = sqlite3_column_int64(st, 3);
        kova_db_done(st);
    }
    return r;
}

/* The sums of struct kova_db_server_usage over the servers that match the WHERE clause. */
#define USAGE_SUMS                                                                                 \
    "SELECT count(*), coalesce(sum(vcpus), 0), coalesce(sum(ram), 0), coalesce(sum(task_state "    \
    "IS NOT NULL), 0) FROM servers WHERE "

int kova_db_server_usage_project(sqlite3 *conn, const char *project_id,
                                 struct kova_db_server_usage *out)
{
    return usage(conn, USAGE_SUMS "project_id = ?", project_id, out);
}

int kova_db_server_usage_running(sqlite3 *conn, const char *host, struct kova_db_server_usage *out)
{
    return usage(conn, USAGE_SUMS "host = ? AND power_state = 1", host, out);
}

bool kova_db_idle(sqlite3 *conn)
{
    if (!sqlite3_get_autocommit(conn))
        return false;
    for (sqlite3_stmt *st = sqlite3_next_stmt(conn, NULL); st; st = sqlite3_next_stmt(conn, st))
        if (sqlite3_stmt_busy(st))
            return false;
    return true;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the servers rows the compute manager uses (kova/db.h). */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one list of the columns struct kova_db_server holds, and its reader. */
#define SERVER_COLS                                                                                \
    "id, vm_state, task_state, image_ref, vcpus, ram, disk, vmm_pid, vmm_start, kernel_id, "       \
    "ramdisk_id, os_cmdline"

static void read_server(sqlite3_stmt *st, struct kova_db_server *w)
{
    memset(w, 0, sizeof(*w));
    db_copy_col(w->id, sizeof(w->id), st, 0);
    db_copy_col(w->vm_state, sizeof(w->vm_state), st, 1);
    w->has_task = sqlite3_column_type(st, 2) != SQLITE_NULL;
    db_copy_col(w->task_state, sizeof(w->task_state), st, 2);
    db_copy_col(w->image_ref, sizeof(w->image_ref), st, 3);
    w->vcpus = sqlite3_column_int64(st, 4);
    w->ram = sqlite3_column_int64(st, 5);
    w->disk = sqlite3_column_int64(st, 6);
    w->vmm_pid = (pid_t)sqlite3_column_int64(st, 7);
    w->vmm_start = (unsigned long long)sqlite3_column_int64(st, 8);
    db_copy_col(w->kernel_id, sizeof(w->kernel_id), st, 9);
    db_copy_col(w->ramdisk_id, sizeof(w->ramdisk_id), st, 10);
    db_copy_col(w->cmdline, sizeof(w->cmdline), st, 11);
}

int kova_db_server_get(sqlite3 *conn, const char *id, struct kova_db_server *out)
{
    sqlite3_stmt *st = kova_db_prepare(conn, "SELECT " SERVER_COLS " FROM servers WHERE id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : kova_db_errno(rc);
    if (r == 0)
        read_server(st, out);
    kova_db_done(st);
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
    st = kova_db_prepare(conn, "UPDATE instance_action_events SET finish_time = ?2, result = ?3, "
                               "traceback = ?4 WHERE finish_time IS NULL AND action_id IN (SELECT "
                               "a.id FROM instance_actions a JOIN servers s ON s.seq = "
                               "a.server_seq WHERE s.id = ?1)");
    if (st) {
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, nowus, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, e->fault ? "Error" : "Success", -1, SQLITE_STATIC);
        if (e->fault)
            sqlite3_bind_text(st, 4, e->fault, -1, SQLITE_TRANSIENT);
    }
    if ((r = db_step_write(conn, st)) < 0)
        return r;
    st = kova_db_prepare(conn, "UPDATE instance_actions SET finish_time = ?2, message = ?3 WHERE "
                               "finish_time IS NULL AND server_seq = (SELECT seq FROM servers "
                               "WHERE id = ?1)");
    if (st) {
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, nowus, -1, SQLITE_TRANSIENT);
        if (e->fault)
            sqlite3_bind_text(st, 3, "Error", -1, SQLITE_STATIC);
    }
    if ((r = db_step_write(conn, st)) < 0)
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

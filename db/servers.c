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
    "server_seq = servers.seq), " SERVER_ADDRESSES

/* The server's addresses as Nova shows them: {"<network name>": [{"version": 4, "addr": ...,
 * "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": ...}, ...], ...}, networks in the order
 * of their first NIC, addresses in NIC order. */
#define SERVER_ADDRESSES                                                                           \
    "(SELECT json_group_object(network_name, json(a)) FROM (SELECT network_name, "                 \
    "json_group_array(json_object('version', 4, 'addr', (ip >> 24) || '.' || ((ip >> 16) & 255) "  \
    "|| '.' || ((ip >> 8) & 255) || '.' || (ip & 255), 'OS-EXT-IPS:type', 'fixed', "               \
    "'OS-EXT-IPS-MAC:mac_addr', mac)) AS a, min(idx) AS first FROM (SELECT * FROM ports WHERE "    \
    "server_seq = servers.seq ORDER BY idx) GROUP BY network_name ORDER BY first))"

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
    C_ADDR, /* the addresses as a JSON object text */
};

static int read_server(sqlite3_stmt *st, void *dst)
{
    struct kova_db_server *w = dst;
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
    const unsigned char *cd = sqlite3_column_text(st, C_CONFIG_DRIVE);
    w->config_drive = cd && cd[0];
    return 0;
}

static const struct db_rows server_rows = {sizeof(struct kova_db_server), read_server, NULL};

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
    v->addresses = text(st, C_ADDR);
    if (!v->addresses)
        v->addresses = "{}";
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
        &v->addresses,
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

/* db_get's reader of kova_db_server_view_get: the view with its own copy of the text. */
static int read_view_owned(sqlite3_stmt *st, void *dst)
{
    struct kova_db_server_view *v = dst;
    read_view(st, v);
    int r = view_own(v);
    if (r < 0)
        memset(v, 0, sizeof(*v));
    return r;
}

int kova_db_server_view_get(sqlite3 *conn, const char *id, const char *project_id,
                            struct kova_db_server_view *out)
{
    memset(out, 0, sizeof(*out));
    return db_get(conn,
                  "SELECT " SERVER_COLS " FROM servers WHERE id = ?1 AND (?2 IS NULL OR "
                  "project_id = ?2)",
                  DB_ARGS(DB_TEXT(id), DB_TEXT(project_id)), read_view_owned, out);
}

/* kova_db_server_view_each's caller and its function, run by db_each on each row. */
struct view_each {
    int (*fn)(const struct kova_db_server_view *v, void *arg);
    void *arg;
};

static int each_view(sqlite3_stmt *st, void *arg)
{
    const struct view_each *e = arg;
    struct kova_db_server_view v;
    read_view(st, &v);
    return e->fn(&v, e->arg);
}

/* Nova's server sort keys and the SQL expression of each in the servers table (NULL: a value
 * kova keeps the same for every server, so it orders nothing). Nullable columns are compared as
 * '' so that NULLs sort first ascending and comparisons with a marker's value are never NULL. */
static const struct {
    const char *name, *expr;
} sort_keys[] = {
    {"created_at", "seq"}, /* creation order: finer than the second created_at keeps */
    {"updated_at", "updated_at"},
    {"display_name", "name"},
    {"hostname", "name"}, /* Nova's hostname is the name, sanitised */
    {"uuid", "id"},
    {"vm_state", "vm_state"},
    {"task_state", "COALESCE(task_state, '')"},
    {"power_state", "power_state"},
    {"project_id", "project_id"},
    {"user_id", "user_id"},
    {"image_ref", "image_ref"},
    {"instance_type_id", "flavor_id"},
    {"key_name", "COALESCE(key_name, '')"},
    {"availability_zone", "COALESCE(availability_zone, '')"},
    {"config_drive", "config_drive"},
    {"access_ip_v4", "access_ipv4"},
    {"access_ip_v6", "access_ipv6"},
    {"auto_disk_config", "disk_config"},
    {"host", "COALESCE(host, '')"},
    {"node", "COALESCE(host, '')"}, /* one node per host */
    {"launched_at", "COALESCE(launched_at, '')"},
    {"terminated_at", "COALESCE(terminated_at, '')"},
    {"kernel_id", "COALESCE(kernel_id, '')"},
    {"ramdisk_id", "COALESCE(ramdisk_id, '')"},
    {"display_description", NULL},
    {"launch_index", NULL},
    {"locked_by", NULL},
    {"progress", NULL},
    {"root_device_name", NULL},
};
#define N_SORT_KEYS ((int)(sizeof(sort_keys) / sizeof(sort_keys[0])))

int kova_db_server_sort_key(const char *name)
{
    for (int i = 0; name && i < N_SORT_KEYS; i++)
        if (!strcmp(sort_keys[i].name, name))
            return i;
    return -EINVAL;
}

/* The list query of f: its WHERE (filters; with a marker, the rows after the marker's in the
 * order) and its ORDER BY. ?1 project, ?2 image, ?3 flavor, ?4 marker id, ?5 changes_since.
 * The only text in it is from sort_keys[]. */
static int list_sql(const struct kova_db_server_filter *f, char *b, size_t n)
{
    const char *expr[KOVA_DB_SORT_MAX + 1];
    bool desc[KOVA_DB_SORT_MAX + 1];
    int k = 0;
    if (f->nsort < 0 || f->nsort > KOVA_DB_SORT_MAX || (f->nsort && !f->sort))
        return -EINVAL;
    for (int i = 0; i < f->nsort; i++) {
        if (f->sort[i].key < 0 || f->sort[i].key >= N_SORT_KEYS)
            return -EINVAL;
        if (!sort_keys[f->sort[i].key].expr)
            continue;
        expr[k] = sort_keys[f->sort[i].key].expr;
        desc[k++] = f->sort[i].desc;
    }
    expr[k] = "seq"; /* the tie-break: creation, in the first key's direction */
    desc[k] = f->nsort ? f->sort[0].desc : true;
    k++;
    size_t len = 0;
    if (!db_put(b, n, &len,
                "SELECT " SERVER_COLS " FROM servers WHERE (?1 IS NULL OR project_id = ?1) AND "
                "(?2 IS NULL OR image_ref = ?2) AND (?3 IS NULL OR flavor_id = ?3) AND "
                "(?5 IS NULL OR updated_at >= ?5)"))
        return -E2BIG;
    return db_sql_order(b, n, &len, "servers", f->marker ? "id = ?4" : NULL, expr, desc, k);
}

int kova_db_server_view_each(sqlite3 *conn, const struct kova_db_server_filter *f,
                             int (*fn)(const struct kova_db_server_view *v, void *arg), void *arg)
{
    long long mseq;
    int r;
    if (f->marker &&
        (r = db_get(conn,
                    "SELECT seq FROM servers WHERE id = ?1 AND (?2 IS NULL OR "
                    "project_id = ?2)",
                    DB_ARGS(DB_TEXT(f->marker), DB_TEXT(f->project_id)), db_read_int64, &mseq)) < 0)
        return r;
    size_t n = 16384; /* KOVA_DB_SORT_MAX keys with a marker: about 6 KiB */
    char *sql = malloc(n);
    if (!sql)
        return -ENOMEM;
    if ((r = list_sql(f, sql, n)) == 0) {
        struct view_each e = {fn, arg};
        r = db_each(conn, sql,
                    DB_ARGS(DB_TEXT(f->project_id), DB_TEXT(f->image_ref), DB_TEXT(f->flavor_id),
                            DB_TEXT(f->marker), DB_TEXT(f->changes_since)),
                    each_view, &e);
    }
    free(sql);
    return r > 0 ? 0 : r;
}

int kova_db_server_get(sqlite3 *conn, const char *id, struct kova_db_server *out)
{
    return db_get(conn, "SELECT " SERVER_COLS " FROM servers WHERE id = ?", DB_ARGS(DB_TEXT(id)),
                  read_server, out);
}

int kova_db_server_list(sqlite3 *conn, struct kova_db_server **out, size_t *n)
{
    return db_collect(conn, "SELECT " SERVER_COLS " FROM servers ORDER BY seq", NULL, 0,
                      &server_rows, (void **)out, n);
}

int kova_db_server_set_task(sqlite3 *conn, const char *id, const char *task)
{
    char now[32];
    db_now_iso(now, true);
    return db_exec_bound(conn, "UPDATE servers SET task_state = ?2, updated_at = ?3 WHERE id = ?1",
                         DB_ARGS(DB_TEXT(id), DB_TEXT(task), DB_TEXT(now)));
}

int kova_db_server_claim_build(sqlite3 *conn, const char *id)
{
    char now[32];
    db_now_iso(now, true);
    return db_exec_bound(conn,
                         "UPDATE servers SET task_state = 'spawning', updated_at = ?2 WHERE id = "
                         "?1 AND vm_state = 'building' AND task_state IS NOT 'deleting'",
                         DB_ARGS(DB_TEXT(id), DB_TEXT(now)));
}

/* A row of kova_db_server_unfinished. */
struct unfinished {
    char id[KOVA_DB_ID_MAX];
    bool del;
};

static int read_unfinished(sqlite3_stmt *st, void *dst)
{
    struct unfinished *u = dst;
    db_copy_col(u->id, sizeof(u->id), st, 0);
    u->del = sqlite3_column_int(st, 1) != 0;
    return 0;
}

static const struct db_rows unfinished_rows = {sizeof(struct unfinished), read_unfinished, NULL};

int kova_db_server_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], bool **del, size_t *n)
{
    *ids = NULL;
    *del = NULL;
    *n = 0;
    struct unfinished *u;
    size_t len;
    char(*v)[KOVA_DB_ID_MAX] = NULL;
    bool *d = NULL;
    int r = db_collect(conn,
                       "SELECT id, task_state IS 'deleting' FROM servers WHERE task_state IS "
                       "'deleting' OR vm_state = 'building' ORDER BY seq",
                       NULL, 0, &unfinished_rows, (void **)&u, &len);
    if (r < 0)
        return r;
    if (len && (!(v = malloc(len * sizeof(*v))) || !(d = malloc(len * sizeof(*d))))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        memcpy(v[i], u[i].id, sizeof(v[i]));
        d[i] = u[i].del;
    }
    /* a build interrupted after it took the server over starts again from scheduling */
    if ((r = kova_db_exec(conn, "UPDATE servers SET task_state = 'scheduling' WHERE vm_state = "
                                "'building' AND task_state IS NOT 'deleting'")) < 0)
        goto out;
    *ids = v;
    *del = d;
    *n = len;
    v = NULL;
    d = NULL;
out:
    free(u);
    free(v);
    free(d);
    return r;
}

int kova_db_server_set_vmm(sqlite3 *conn, const char *id, pid_t pid, unsigned long long start)
{
    return db_exec_bound(conn, "UPDATE servers SET vmm_pid = ?2, vmm_start = ?3 WHERE id = ?1",
                         DB_ARGS(DB_TEXT(id), pid > 0 ? DB_INT(pid) : DB_NULL,
                                 pid > 0 ? DB_INT((long long)start) : DB_NULL));
}

int kova_db_server_set_boot(sqlite3 *conn, const char *id, const char *kernel_id,
                            const char *ramdisk_id, const char *cmdline)
{
    return db_exec_bound(
        conn, "UPDATE servers SET kernel_id = ?2, ramdisk_id = ?3, os_cmdline = ?4 WHERE id = ?1",
        DB_ARGS(DB_TEXT(id), DB_TEXT(kernel_id),
                DB_TEXT(ramdisk_id && ramdisk_id[0] ? ramdisk_id : NULL), DB_TEXT(cmdline)));
}

static int finish_txn(sqlite3 *conn, void *arg)
{
    const struct kova_db_task_end *e = arg;
    char now[32], nowus[32];
    db_now_iso(now, true);
    db_now_iso(nowus, false);
    int r = db_exec_bound(
        conn,
        "UPDATE servers SET vm_state = ?3, power_state = ?4, task_state = NULL, updated_at = ?5, "
        "vmm_pid = CASE WHEN ?6 THEN NULL ELSE vmm_pid END, vmm_start = CASE WHEN ?6 THEN NULL "
        "ELSE vmm_start END, launched_at = CASE WHEN ?7 THEN ?5 ELSE launched_at END, fault_code = "
        "CASE WHEN ?8 IS NULL THEN fault_code ELSE ?9 END, fault_message = coalesce(?8, "
        "fault_message), fault_details = coalesce(?8, fault_details), fault_created = CASE WHEN ?8 "
        "IS NULL THEN fault_created ELSE ?5 END WHERE id = ?1 AND task_state IS ?2",
        DB_ARGS(DB_TEXT(e->id), DB_TEXT(e->task), DB_TEXT(e->vm_state), DB_INT(e->power_state),
                DB_TEXT(now), DB_INT(e->vmm_gone), DB_INT(e->launched), DB_TEXT(e->fault),
                DB_INT(e->fault_code)));
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
    return db_exec_bound(
        conn,
        "UPDATE servers SET vm_state = CASE WHEN vm_state IN ('active','paused','suspended') THEN "
        "'stopped' ELSE vm_state END, power_state = 4, vmm_pid = NULL, vmm_start = NULL, "
        "updated_at = ?3 WHERE id = ?1 AND vmm_pid = ?2",
        DB_ARGS(DB_TEXT(id), DB_INT(pid), DB_TEXT(now)));
}

int kova_db_server_reconcile(sqlite3 *conn, const char *id, const char *vm_state, int power_state,
                             bool alive, const char *fault)
{
    return db_exec_bound(
        conn,
        "UPDATE servers SET vm_state = ?2, power_state = ?3, task_state = NULL, vmm_pid = CASE "
        "WHEN ?4 THEN vmm_pid ELSE NULL END, vmm_start = CASE WHEN ?4 THEN vmm_start ELSE NULL "
        "END, fault_code = CASE WHEN ?5 IS NULL THEN fault_code ELSE 500 END, fault_message = "
        "coalesce(?5, fault_message), fault_details = coalesce(?5, fault_details), fault_created "
        "= CASE WHEN ?5 IS NULL THEN fault_created ELSE strftime('%Y-%m-%dT%H:%M:%SZ','now') END "
        "WHERE id = ?1",
        DB_ARGS(DB_TEXT(id), DB_TEXT(vm_state), DB_INT(power_state), DB_INT(alive),
                DB_TEXT(fault)));
}

int kova_db_server_delete(sqlite3 *conn, const char *id)
{
    return db_exec_bound(conn, "DELETE FROM servers WHERE id = ?1", DB_ARGS(DB_TEXT(id)));
}

/* The seq of a server. -ENOENT when there is none. */
static int server_seq(sqlite3 *conn, const char *id, long long *seq)
{
    return db_get(conn, "SELECT seq FROM servers WHERE id = ?", DB_ARGS(DB_TEXT(id)), db_read_int64,
                  seq);
}

int kova_db_server_exists(sqlite3 *conn, const char *id)
{
    long long seq;
    int r = server_seq(conn, id, &seq);
    return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

struct guest_data {
    char *key_data, *user_data;
};

static char *dup_col(sqlite3_stmt *st, int c)
{
    const unsigned char *t = sqlite3_column_text(st, c);
    return t ? strdup((const char *)t) : NULL;
}

static int read_guest_data(sqlite3_stmt *st, void *dst)
{
    struct guest_data *g = dst;
    g->key_data = dup_col(st, 0);
    g->user_data = dup_col(st, 1);
    if ((sqlite3_column_type(st, 0) != SQLITE_NULL && !g->key_data) ||
        (sqlite3_column_type(st, 1) != SQLITE_NULL && !g->user_data)) {
        free(g->key_data);
        free(g->user_data);
        return -ENOMEM;
    }
    return 0;
}

int kova_db_server_guest_data(sqlite3 *conn, const char *id, char **key_data, char **user_data)
{
    struct guest_data g = {0};
    int r = db_get(conn, "SELECT key_data, user_data FROM servers WHERE id = ?",
                   DB_ARGS(DB_TEXT(id)), read_guest_data, &g);
    if (r < 0)
        return r;
    *key_data = g.key_data;
    *user_data = g.user_data;
    return 0;
}

/* Adds (or replaces) the n items of a server's metadata. */
static int meta_put(sqlite3 *conn, long long seq, const struct kova_db_meta *v, size_t n)
{
    if (n == 0)
        return 0;
    sqlite3_stmt *st = kova_db_prepare(
        conn, "INSERT OR REPLACE INTO server_metadata (server_seq, key, value) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    int r = 0;
    for (size_t i = 0; i < n && r >= 0; i++)
        r = db_run(conn, st, DB_ARGS(DB_INT(seq), DB_TEXT(v[i].key), DB_TEXT(v[i].value)));
    kova_db_done(st);
    return r < 0 ? r : 0;
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
    int r = 0;
    for (size_t i = 0; i < a->count && r == 0; i++) {
        char name[KOVA_DB_NAME_MAX + 24];
        if (a->count > 1)
            snprintf(name, sizeof(name), "%s-%zu", s->name, i + 1);
        else
            snprintf(name, sizeof(name), "%s", s->name);
        r = db_exec_bound(
            conn,
            "INSERT INTO servers (id, name, project_id, user_id, image_ref, flavor_id, vcpus, ram, "
            "disk, vm_state, task_state, power_state, key_name, key_data, user_data, "
            "availability_zone, config_drive, access_ipv4, access_ipv6, disk_config, host, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'building','scheduling',0,?,?,?,?,"
            "?,?,?,?,?,?,?)",
            DB_ARGS(DB_TEXT(a->ids[i]), DB_TEXT(name), DB_TEXT(s->project_id), DB_TEXT(s->user_id),
                    DB_TEXT(s->image_ref), DB_TEXT(s->flavor_id), DB_INT(s->vcpus), DB_INT(s->ram),
                    DB_INT(s->disk), DB_TEXT(s->key_name), DB_TEXT(s->key_data),
                    DB_TEXT(s->user_data), DB_TEXT(s->availability_zone), DB_TEXT(s->config_drive),
                    DB_TEXT(s->access_ipv4), DB_TEXT(s->access_ipv6), DB_TEXT(s->disk_config),
                    DB_TEXT(s->host), DB_TEXT(now), DB_TEXT(now)));
        if (r < 0)
            break;
        long long seq = sqlite3_last_insert_rowid(conn);
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
    return db_exec_found(
        conn,
        "UPDATE servers SET name = coalesce(?2, name), access_ipv4 = coalesce(?3, access_ipv4), "
        "access_ipv6 = coalesce(?4, access_ipv6), disk_config = coalesce(?5, disk_config), "
        "updated_at = ?6 WHERE id = ?1 AND (?7 IS NULL OR project_id = ?7)",
        DB_ARGS(DB_TEXT(id), DB_TEXT(e->name), DB_TEXT(e->access_ipv4), DB_TEXT(e->access_ipv6),
                DB_TEXT(e->disk_config), DB_TEXT(now), DB_TEXT(project_id)));
}

int kova_db_server_set_image(sqlite3 *conn, const char *id, const char *image_ref, const char *name)
{
    return db_exec_found(conn,
                         "UPDATE servers SET image_ref = ?2, name = coalesce(?3, name) WHERE id = "
                         "?1",
                         DB_ARGS(DB_TEXT(id), DB_TEXT(image_ref), DB_TEXT(name)));
}

static int read_meta(sqlite3_stmt *st, void *dst)
{
    struct kova_db_meta *m = dst;
    db_copy_col(m->key, sizeof(m->key), st, 0);
    db_copy_col(m->value, sizeof(m->value), st, 1);
    return 0;
}

static const struct db_rows meta_rows = {sizeof(struct kova_db_meta), read_meta, NULL};

int kova_db_server_meta_list(sqlite3 *conn, const char *id, struct kova_db_meta **out, size_t *n)
{
    return db_collect(conn,
                      "SELECT m.key, m.value FROM server_metadata m JOIN servers s ON s.seq = "
                      "m.server_seq WHERE s.id = ? ORDER BY m.key",
                      DB_ARGS(DB_TEXT(id)), &meta_rows, (void **)out, n);
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
    long long seq = 0, count;
    int r = server_seq(conn, a->id, &seq);
    if (r < 0)
        return r;
    if (a->replace && (r = db_exec_bound(conn, "DELETE FROM server_metadata WHERE server_seq = ?",
                                         DB_ARGS(DB_INT(seq)))) < 0)
        return r;
    if ((r = meta_put(conn, seq, a->v, a->n)) < 0)
        return r;
    if (a->quota < 0)
        return 0;
    if ((r = db_get(conn, "SELECT count(*) FROM server_metadata WHERE server_seq = ?",
                    DB_ARGS(DB_INT(seq)), db_read_int64, &count)) < 0)
        return r;
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
    return db_exec_found(conn,
                         "DELETE FROM server_metadata WHERE server_seq = (SELECT seq FROM servers "
                         "WHERE id = ?1) AND key = ?2",
                         DB_ARGS(DB_TEXT(id), DB_TEXT(key)));
}

static int read_usage(sqlite3_stmt *st, void *dst)
{
    struct kova_db_server_usage *u = dst;
    u->count = sqlite3_column_int64(st, 0);
    u->vcpus = sqlite3_column_int64(st, 1);
    u->ram = sqlite3_column_int64(st, 2);
    u->tasks = sqlite3_column_int64(st, 3);
    return 0;
}

/* Runs one of the USAGE_SUMS statements, key bound to its ?. */
static int usage(sqlite3 *conn, const char *sql, const char *key, struct kova_db_server_usage *out)
{
    memset(out, 0, sizeof(*out));
    return db_get(conn, sql, DB_ARGS(DB_TEXT(key)), read_usage, out);
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

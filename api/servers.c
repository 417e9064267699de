/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /servers: create, list, detail, show, update, delete, metadata, actions, os-instance-actions,
 * and /limits (whose usage comes from the servers table).
 *
 * The slow part of every state change (build, stop, start, reboot, pause, rebuild, delete) runs
 * in lifecycle.c: a handler checks the state and sets the task_state in one transaction,
 * answers, and queues the task.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERVER_COLS                                                                                \
    "seq, id, name, project_id, user_id, image_ref, flavor_id, vm_state, task_state, "             \
    "power_state, key_name, availability_zone, config_drive, access_ipv4, access_ipv6, "           \
    "disk_config, host, launched_at, terminated_at, fault_code, fault_message, fault_details, "    \
    "fault_created, created_at, updated_at, vcpus, ram, disk, (SELECT json_group_object(key, "     \
    "value) FROM server_metadata WHERE server_seq = servers.seq)"

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
    C_META, /* the metadata as a JSON object text */
};

static const char *col(sqlite3_stmt *st, int c)
{
    return (const char *)sqlite3_column_text(st, c);
}

/* Appends column c as a JSON string (null for NULL), its length from SQLite. */
static void sb_col(struct sbuf *b, sqlite3_stmt *st, int c)
{
    const char *s = col(st, c);
    sb_strn(b, s, s ? (size_t)sqlite3_column_bytes(st, c) : 0);
}

/* Nova's status from vm_state + task_state (nova/api/openstack/common.py). */
static const char *server_status(const char *vm, const char *task)
{
    task = task ? task : "";
    if (!strcmp(vm, "active")) {
        if (!strcmp(task, "rebooting") || !strcmp(task, "reboot_pending") ||
            !strcmp(task, "reboot_started"))
            return "REBOOT";
        if (!strcmp(task, "rebooting_hard") || !strcmp(task, "reboot_pending_hard") ||
            !strcmp(task, "reboot_started_hard"))
            return "HARD_REBOOT";
        if (!strcmp(task, "rebuilding") || !strcmp(task, "rebuild_block_device_mapping") ||
            !strcmp(task, "rebuild_spawning"))
            return "REBUILD";
        if (!strncmp(task, "resize_", 7))
            return "RESIZE";
        if (!strcmp(task, "migrating"))
            return "MIGRATING";
        return "ACTIVE";
    }
    if (!strcmp(vm, "building"))
        return "BUILD";
    if (!strcmp(vm, "stopped")) {
        if (!strcmp(task, "rebuilding") || !strcmp(task, "rebuild_spawning"))
            return "REBUILD";
        if (!strncmp(task, "resize_", 7))
            return "RESIZE";
        return "SHUTOFF";
    }
    if (!strcmp(vm, "resized"))
        return "VERIFY_RESIZE";
    if (!strcmp(vm, "paused"))
        return !strcmp(task, "rebooting_hard") ? "HARD_REBOOT" : "PAUSED";
    if (!strcmp(vm, "suspended"))
        return !strcmp(task, "rebooting_hard") ? "HARD_REBOOT" : "SUSPENDED";
    if (!strcmp(vm, "rescued"))
        return "RESCUE";
    if (!strcmp(vm, "error"))
        return (!strcmp(task, "rebuilding") || !strcmp(task, "rebuild_spawning")) ? "REBUILD"
                                                                                  : "ERROR";
    if (!strcmp(vm, "deleted"))
        return "DELETED";
    if (!strcmp(vm, "soft-delete"))
        return "SOFT_DELETED";
    if (!strcmp(vm, "shelved"))
        return "SHELVED";
    if (!strcmp(vm, "shelved_offloaded"))
        return "SHELVED_OFFLOADED";
    return "UNKNOWN";
}

static void host_id(const char *project, const char *host, char out[57])
{
    out[0] = 0;
    if (!host || !host[0])
        return;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (c && EVP_DigestInit_ex(c, EVP_sha224(), NULL) &&
        EVP_DigestUpdate(c, project, strlen(project)) && EVP_DigestUpdate(c, host, strlen(host)) &&
        EVP_DigestFinal_ex(c, md, &n)) {
        for (unsigned i = 0; i < n && i < 28; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    EVP_MD_CTX_free(c);
}

static json_t *metadata_of(sqlite3 *db, sqlite3_stmt **cache, sqlite3_int64 seq)
{
    if (!*cache)
        *cache = kova_db_prepare(db, "SELECT key, value FROM server_metadata WHERE server_seq = ?");
    json_t *o = json_object();
    if (!*cache)
        return o;
    sqlite3_reset(*cache);
    sqlite3_bind_int64(*cache, 1, seq);
    while (sqlite3_step(*cache) == SQLITE_ROW)
        json_object_set_new(o, col(*cache, 0), json_string(col(*cache, 1)));
    return o;
}

enum { VIEW_FULL, VIEW_UPDATE };

/* hostId is sha224(project + host): computed once per (project, host) within a request. */
struct hid_cache {
    char project[256], host[256], hid[57];
    bool valid;
};

static const char *cached_host_id(struct hid_cache *c, const char *project, const char *host)
{
    host = host ? host : "";
    if (!c->valid || strcmp(c->project, project) || strcmp(c->host, host)) {
        snprintf(c->project, sizeof(c->project), "%s", project);
        snprintf(c->host, sizeof(c->host), "%s", host);
        host_id(project, host, c->hid);
        c->valid = true;
    }
    return c->hid;
}

static void sb_link(struct sbuf *b, struct kova_req *r, const char *rel, bool versioned,
                    const char *what, const char *id)
{
    /* base_url holds only [A-Za-z0-9.:[]-] (set_base_url); what is a literal */
    sb_put(b, "{\"rel\":\"");
    sb_put(b, rel);
    sb_put(b, "\",\"href\":\"");
    sb_put(b, r->base_url);
    if (versioned)
        sb_put(b, "/v2.1");
    sb_put(b, "/");
    sb_put(b, what);
    sb_put(b, "/");
    sb_esc(b, id);
    sb_put(b, "\"}");
}

static void sb_key(struct sbuf *b, const char *k)
{
    sb_put(b, ",\"");
    sb_put(b, k);
    sb_put(b, "\":");
}

/* The 2.1 server body from a row of SERVER_COLS, rendered straight to text (list calls render
 * up to max_limit of them per request). */
static void render_server(struct sbuf *b, struct kova_req *r, sqlite3_stmt *st,
                          struct hid_cache *hc, int view)
{
    const char *id = col(st, C_ID);
    const char *vm = col(st, C_VM_STATE);
    const char *task = col(st, C_TASK_STATE);
    const char *status = server_status(vm, task);
    sb_put(b, "{\"id\":");
    sb_str(b, id);
    sb_key(b, "name");
    sb_col(b, st, C_NAME);
    sb_key(b, "status");
    sb_str(b, status);
    sb_key(b, "tenant_id");
    sb_col(b, st, C_PROJECT);
    sb_key(b, "user_id");
    sb_col(b, st, C_USER);
    sb_key(b, "metadata");
    sb_put(b, col(st, C_META) ? col(st, C_META) : "{}");
    sb_key(b, "hostId");
    sb_str(b, cached_host_id(hc, col(st, C_PROJECT), col(st, C_HOST)));
    sb_key(b, "image");
    const char *image = col(st, C_IMAGE);
    if (image && image[0]) {
        sb_put(b, "{\"id\":");
        sb_str(b, image);
        sb_put(b, ",\"links\":[");
        sb_link(b, r, "bookmark", false, "images", image);
        sb_put(b, "]}");
    } else {
        sb_put(b, "\"\"");
    }
    sb_key(b, "flavor");
    sb_put(b, "{\"id\":");
    sb_col(b, st, C_FLAVOR);
    sb_put(b, ",\"links\":[");
    sb_link(b, r, "bookmark", false, "flavors", col(st, C_FLAVOR));
    sb_put(b, "]}");
    sb_key(b, "created");
    sb_col(b, st, C_CREATED);
    sb_key(b, "updated");
    sb_col(b, st, C_UPDATED);
    sb_key(b, "addresses");
    sb_put(b, "{}");
    sb_key(b, "accessIPv4");
    sb_col(b, st, C_IPV4);
    sb_key(b, "accessIPv6");
    sb_col(b, st, C_IPV6);
    sb_key(b, "links");
    sb_put(b, "[");
    sb_link(b, r, "self", true, "servers", id);
    sb_put(b, ",");
    sb_link(b, r, "bookmark", false, "servers", id);
    sb_put(b, "]");
    sb_key(b, "OS-DCF:diskConfig");
    sb_col(b, st, C_DISK_CONFIG);
    sb_key(b, "config_drive");
    sb_col(b, st, C_CONFIG_DRIVE);
    sb_key(b, "key_name");
    sb_col(b, st, C_KEY_NAME);
    sb_key(b, "os-extended-volumes:volumes_attached");
    sb_put(b, "[]");
    sb_key(b, "security_groups");
    sb_put(b, "[{\"name\":\"default\"}]");
    if (!strcmp(status, "ACTIVE") || !strcmp(status, "BUILD") || !strcmp(status, "REBUILD") ||
        !strcmp(status, "RESIZE") || !strcmp(status, "VERIFY_RESIZE") ||
        !strcmp(status, "MIGRATING")) {
        sb_key(b, "progress");
        sb_put(b, "0");
    }
    if (sqlite3_column_type(st, C_FAULT_CODE) != SQLITE_NULL &&
        (!strcmp(vm, "error") || !strcmp(vm, "deleted"))) {
        int code = sqlite3_column_int(st, C_FAULT_CODE);
        sb_key(b, "fault");
        sb_printf(b, "{\"code\":%d,\"created\":", code);
        sb_col(b, st, C_FAULT_CREATED);
        sb_put(b, ",\"message\":");
        sb_str(b, col(st, C_FAULT_MSG) ? col(st, C_FAULT_MSG) : "");
        if ((r->auth.is_admin || code != 500) && col(st, C_FAULT_DETAILS)) {
            sb_put(b, ",\"details\":");
            sb_col(b, st, C_FAULT_DETAILS);
        }
        sb_put(b, "}");
    }
    if (view == VIEW_FULL) {
        sb_key(b, "OS-EXT-AZ:availability_zone");
        sb_str(b, col(st, C_AZ) ? col(st, C_AZ) : "");
        sb_key(b, "OS-EXT-STS:vm_state");
        sb_str(b, vm);
        sb_key(b, "OS-EXT-STS:task_state");
        sb_str(b, task);
        sb_key(b, "OS-EXT-STS:power_state");
        sb_printf(b, "%d", sqlite3_column_int(st, C_POWER));
        sb_key(b, "OS-SRV-USG:launched_at");
        sb_col(b, st, C_LAUNCHED);
        sb_key(b, "OS-SRV-USG:terminated_at");
        sb_col(b, st, C_TERMINATED);
        if (r->auth.is_admin) {
            sb_key(b, "OS-EXT-SRV-ATTR:host");
            sb_col(b, st, C_HOST);
            sb_key(b, "OS-EXT-SRV-ATTR:hypervisor_hostname");
            sb_col(b, st, C_HOST);
            sb_key(b, "OS-EXT-SRV-ATTR:instance_name");
            sb_printf(b, "\"instance-%08llx\"",
                      (unsigned long long)sqlite3_column_int64(st, C_SEQ));
        }
    }
    sb_put(b, "}");
}

/* Replies {"server": <body>} for the row st. */
/* {"server": {...}}; admin_pass (rebuild's reply, as Nova gives it) is added when not NULL. */
static void reply_server_pass(struct kova_req *r, sqlite3_stmt *st, int view, int status,
                              const char *admin_pass)
{
    struct sbuf b = {0};
    struct hid_cache hc = {0};
    sb_put(&b, "{\"server\":");
    render_server(&b, r, st, &hc, view);
    if (admin_pass && !b.oom && b.len && b.p[b.len - 1] == '}') {
        b.p[--b.len] = 0;
        sb_put(&b, ",\"adminPass\":");
        sb_str(&b, admin_pass);
        sb_put(&b, "}");
    }
    sb_put(&b, "}");
    reply_sbuf(r, status, &b);
}

static void reply_server(struct kova_req *r, sqlite3_stmt *st, int view, int status)
{
    reply_server_pass(r, st, view, status, NULL);
}

/* Loads a server visible to the caller (own project, or any for admins). Replies 404 (or 500)
 * and returns NULL when there is none. The statement stays positioned on the row. */
static sqlite3_stmt *load_server(struct kova_req *r, const char *id)
{
    if (!kova_is_uuid(id)) {
        reply_fault(r, 404, "Instance %.100s could not be found.", id);
        return NULL;
    }
    sqlite3_stmt *st = kova_db_prepare(r->db, "SELECT " SERVER_COLS " FROM servers WHERE id = ? "
                                              "AND (?2 OR project_id = ?3)");
    if (!st) {
        reply_db_error(r, -EIO);
        return NULL;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, r->auth.is_admin);
    sqlite3_bind_text(st, 3, r->auth.project_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return st;
    kova_db_done(st);
    if (rc == SQLITE_DONE)
        reply_fault(r, 404, "Instance %.100s could not be found.", id);
    else
        reply_db_error(r, kova_db_errno(rc));
    return NULL;
}

/* ------------------------------------------------------------------ list */

static const char *const status_vm_states[][2] = {
    {"ACTIVE", "active"},
    {"BUILD", "building"},
    {"SHUTOFF", "stopped"},
    {"PAUSED", "paused"},
    {"SUSPENDED", "suspended"},
    {"ERROR", "error"},
    {"RESCUE", "rescued"},
    {"VERIFY_RESIZE", "resized"},
    {"SHELVED", "shelved"},
    {"SOFT_DELETED", "soft-delete"},
    {"SHELVED_OFFLOADED", "shelved_offloaded"},
    {"DELETED", "deleted"},
    {"REBOOT", NULL},
    {"HARD_REBOOT", NULL},
    {"REBUILD", NULL},
    {"RESIZE", NULL},
    {"MIGRATING", NULL},
};

/* True when the connection has no transaction or statement open, so that its next read sees
 * every commit made so far. */
static bool db_idle(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        return false;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (sqlite3_stmt_busy(st))
            return false;
    return true;
}

/*
 * GET /servers and /servers/detail. Replies are cached (api->list_cache) under a key naming
 * every input besides the database (req_cache_key) and the database generation read before
 * the first read: any committed write, from any thread, retires them. Only 200s are stored;
 * an input that fails gets the same failure every time, cache or not, since the key holds it.
 */
static void list_common(struct kova_req *r, bool detail)
{
    struct kova_cache *cache = r->api->list_cache;
    struct sbuf key = {0};
    uint64_t gen = 0;
    bool cacheable = cache && db_idle(r->db) && kova_db_generation(r->api->db, r->db, &gen) == 0 &&
                     req_cache_key(r, detail ? "servers/detail" : "servers", &key);
    if (cacheable) {
        struct kova_centry *e = kova_cache_get(cache, key.p, key.len, gen);
        if (e) {
            reply_centry(r, 200, e);
            free(key.p);
            return;
        }
    }
    int limit;
    if (!req_limit(r, &limit)) {
        free(key.p);
        return;
    }
    const char *name = req_query(r, "name");
    const char *status = req_query(r, "status");
    const char *image = req_query(r, "image");
    const char *flavor = req_query(r, "flavor");
    const char *marker = req_query(r, "marker");
    const char *all = req_query(r, "all_tenants");
    const char *proj = req_query(r, "project_id");
    if (!proj)
        proj = req_query(r, "tenant_id");
    bool all_tenants = false;
    if (all && r->auth.is_admin) {
        all_tenants = !(strcasecmp(all, "0") == 0 || strcasecmp(all, "false") == 0 ||
                        strcasecmp(all, "f") == 0 || strcasecmp(all, "off") == 0 ||
                        strcasecmp(all, "no") == 0);
    }
    if (!r->auth.is_admin || !proj)
        proj = all_tenants ? NULL : r->auth.project_id;
    if (status) {
        bool known = false;
        for (size_t i = 0; i < sizeof(status_vm_states) / sizeof(status_vm_states[0]); i++)
            if (strcasecmp(status, status_vm_states[i][0]) == 0)
                known = true;
        if (!known) {
            /* Nova answers an empty list for an unknown status (admins: 400) */
            if (r->auth.is_admin) {
                reply_fault(r, 400, "Invalid status value");
                free(key.p);
                return;
            }
            json_t *o = json_pack("{s:[]}", "servers");
            reply_json(r, 200, o);
            free(key.p);
            return;
        }
    }
    regex_t re;
    bool have_re = false;
    if (name) {
        /* back-references make POSIX matching exponential: refused, as is a long pattern */
        bool backref = false;
        for (const char *p = name; *p; p++) {
            if (*p == '\\' && p[1]) {
                if (p[1] >= '0' && p[1] <= '9')
                    backref = true;
                p++;
            }
        }
        if (strlen(name) > 255 || backref || regcomp(&re, name, REG_EXTENDED | REG_NOSUB) != 0) {
            reply_fault(r, 400,
                        "Invalid name filter (a regular expression of at most 255 "
                        "characters is expected)");
            free(key.p);
            return;
        }
        have_re = true;
    }
    sqlite3_int64 marker_seq = -1;
    sqlite3_stmt *st = NULL;
    if (marker) {
        st = kova_db_prepare(r->db, "SELECT seq FROM servers WHERE id = ? AND (?2 IS NULL OR "
                                    "project_id = ?2)");
        if (!st) {
            reply_db_error(r, -EIO);
            goto out;
        }
        sqlite3_bind_text(st, 1, marker, -1, SQLITE_TRANSIENT);
        if (proj)
            sqlite3_bind_text(st, 2, proj, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            marker_seq = sqlite3_column_int64(st, 0);
        kova_db_done(st);
        st = NULL;
        if (marker_seq < 0) {
            reply_fault(r, 400, "marker [%.100s] not found", marker);
            goto out;
        }
    }
    st = kova_db_prepare(r->db, "SELECT " SERVER_COLS " FROM servers WHERE (?1 IS NULL OR "
                                "project_id = ?1) AND (?2 < 0 OR seq < ?2) AND (?3 IS NULL OR "
                                "image_ref = ?3) AND (?4 IS NULL OR flavor_id = ?4) "
                                "ORDER BY seq DESC");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    if (proj)
        sqlite3_bind_text(st, 1, proj, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, marker_seq);
    if (image)
        sqlite3_bind_text(st, 3, image, -1, SQLITE_TRANSIENT);
    if (flavor)
        sqlite3_bind_text(st, 4, flavor, -1, SQLITE_TRANSIENT);
    struct sbuf b = {0};
    struct hid_cache hc = {0};
    char last[40] = "";
    int rc, n = 0;
    sb_put(&b, "{\"servers\":[");
    while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (status &&
            strcasecmp(status, server_status(col(st, C_VM_STATE), col(st, C_TASK_STATE))) != 0)
            continue;
        if (have_re && regexec(&re, col(st, C_NAME), 0, NULL, 0) != 0)
            continue;
        if (n++)
            sb_put(&b, ",");
        if (detail) {
            render_server(&b, r, st, &hc, VIEW_FULL);
        } else {
            sb_put(&b, "{\"id\":");
            sb_col(&b, st, C_ID);
            sb_put(&b, ",\"name\":");
            sb_col(&b, st, C_NAME);
            sb_put(&b, ",\"links\":[");
            sb_link(&b, r, "self", true, "servers", col(st, C_ID));
            sb_put(&b, ",");
            sb_link(&b, r, "bookmark", false, "servers", col(st, C_ID));
            sb_put(&b, "]}");
        }
        snprintf(last, sizeof(last), "%s", col(st, C_ID));
    }
    sb_put(&b, "]");
    if (last[0] && n == limit) {
        /* Like Nova, the next link keeps every other query argument (filters, all_tenants). */
        static const char *const paging[] = {"limit", "marker", NULL};
        struct sbuf href = {0};
        sb_printf(&href, "%s/v2.1/servers%s?", r->base_url, detail ? "/detail" : "");
        req_query_copy(r, paging, &href);
        sb_printf(&href, "limit=%d&marker=%s", limit, last);
        sb_put(&b, ",\"servers_links\":[{\"rel\":\"next\",\"href\":");
        sb_str(&b, href.oom ? "" : href.p);
        b.oom |= href.oom;
        free(href.p);
        sb_put(&b, "}]");
    }
    sb_put(&b, "}");
    kova_db_done(st);
    st = NULL;
    uint64_t cur = gen + 1;
    if (cache && !b.oom && b.p) {
        /* an uncacheable reply is made an entry too (not kept), to be offered gzip-encoded */
        if (!cacheable || kova_db_generation(r->api->db, r->db, &cur) < 0)
            cacheable = false;
        struct kova_centry *e =
            kova_cache_put(cache, cacheable ? key.p : NULL, key.len, gen, cur, b.p, b.len);
        b.p = NULL;
        if (e)
            reply_centry(r, 200, e);
        else
            reply_fault(r, 500, "out of memory");
    } else {
        reply_sbuf(r, 200, &b);
    }
out:
    kova_db_done(st);
    if (have_re)
        regfree(&re);
    free(key.p);
}

static void server_list(struct kova_req *r)
{
    list_common(r, false);
}

static void server_detail(struct kova_req *r)
{
    list_common(r, true);
}

static void server_show(struct kova_req *r)
{
    sqlite3_stmt *st = load_server(r, r->arg[0]);
    if (!st)
        return;
    reply_server(r, st, VIEW_FULL, 200);
    kova_db_done(st);
}

/* ------------------------------------------------------------------ helpers for writes */

static int record_action(struct kova_req *r, sqlite3_int64 seq, const char *action,
                         const char *event, const char *now, sqlite3_int64 *action_id)
{
    sqlite3_stmt *st = kova_db_prepare(r->db, "INSERT INTO instance_actions (server_seq, action, "
                                              "request_id, user_id, project_id, start_time) "
                                              "VALUES (?,?,?,?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->request_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, r->auth.user_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, r->auth.project_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    kova_db_done(st);
    if (rc != SQLITE_DONE)
        return kova_db_errno(rc);
    sqlite3_int64 aid = sqlite3_last_insert_rowid(r->db);
    if (action_id)
        *action_id = aid;
    if (!event)
        return 0;
    st = kova_db_prepare(r->db, "INSERT INTO instance_action_events (action_id, event, "
                                "start_time) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, aid);
    sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    kova_db_done(st);
    return rc == SQLITE_DONE ? 0 : kova_db_errno(rc);
}

/* Validates a metadata object (keys 1-255, string values ≤ 255). */
static bool check_metadata(struct kova_req *r, json_t *md, const char *what)
{
    if (!json_is_object(md)) {
        reply_fault(r, 400, "Invalid input for field/attribute %s: an object is required.", what);
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v)
    {
        size_t kl = strlen(k);
        if (kl == 0 || kl > 255) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute %s: keys must be 1-255 "
                        "characters.",
                        what);
            return false;
        }
        if (!json_is_string(v) || json_string_length(v) > 255 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute %s: values must be strings "
                        "of at most 255 characters.",
                        what);
            return false;
        }
    }
    return true;
}

static int insert_metadata(sqlite3 *db, sqlite3_int64 seq, json_t *md)
{
    sqlite3_stmt *st = kova_db_prepare(
        db, "INSERT OR REPLACE INTO server_metadata (server_seq, key, value) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    const char *k;
    json_t *v;
    int r = 0;
    json_object_foreach(md, k, v)
    {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, json_string_value(v), -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            r = kova_db_errno(rc);
            break;
        }
    }
    kova_db_done(st);
    return r;
}

/* Takes the id out of a reference that may be a URL ("http://h/v2.1/flavors/1" → "1"). */
static const char *ref_id(const char *ref)
{
    const char *s = strrchr(ref, '/');
    return s ? s + 1 : ref;
}

static bool is_base64(const char *s, size_t n)
{
    size_t pad = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\n' || c == '\r')
            continue;
        if (c == '=') {
            pad++;
            chars++;
            continue;
        }
        if (pad)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
        chars++;
    }
    return pad <= 2 && chars % 4 == 0;
}

int servers_usage(sqlite3 *db, const char *project, long long *instances, long long *cores,
                  long long *ram)
{
    sqlite3_stmt *st =
        kova_db_prepare(db, "SELECT count(*), coalesce(sum(vcpus),0), "
                            "coalesce(sum(ram),0) FROM servers WHERE project_id = ?");
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *instances = sqlite3_column_int64(st, 0);
        *cores = sqlite3_column_int64(st, 1);
        *ram = sqlite3_column_int64(st, 2);
    }
    kova_db_done(st);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

/* ------------------------------------------------------------------ create */

static void gen_password(char out[13])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    char u[37];
    kova_uuid(u);
    unsigned char b[12];
    /* 12 characters from the random uuid's hex digits, mapped onto the alphabet */
    for (int i = 0, j = 0; i < 12; i++, j += 3) {
        unsigned v = 0;
        for (int k = 0; k < 3; k++) {
            char c = u[(j + k) % 36];
            if (c == '-')
                c = u[(j + k + 1) % 36];
            v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        b[i] = (unsigned char)(v % (sizeof(alphabet) - 1));
        out[i] = alphabet[b[i]];
    }
    out[12] = 0;
}

static void server_create(struct kova_req *r)
{
    static const char *const allowed_top[] = {"server", "os:scheduler_hints",
                                              "OS-SCH-HNT:scheduler_hints", NULL};
    static const char *const allowed[] = {"name",
                                          "imageRef",
                                          "flavorRef",
                                          "metadata",
                                          "key_name",
                                          "user_data",
                                          "availability_zone",
                                          "min_count",
                                          "max_count",
                                          "return_reservation_id",
                                          "networks",
                                          "config_drive",
                                          "block_device_mapping",
                                          "block_device_mapping_v2",
                                          "OS-DCF:diskConfig",
                                          "accessIPv4",
                                          "accessIPv6",
                                          "security_groups",
                                          "adminPass",
                                          "personality",
                                          NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    sqlite3_stmt *st = NULL;
    json_t *s = req_json_root(r, body, "server");
    if (!s || !check_keys(r, body, allowed_top, "body") || !check_keys(r, s, allowed, "'server'"))
        goto out;
    json_t *v;
    /* name */
    v = json_object_get(s, "name");
    if (!json_is_string(v) || !valid_name(json_string_value(v), 255) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute name: a string of 1-255 printable "
                    "characters is required.");
        goto out;
    }
    const char *name = json_string_value(v);
    /* flavorRef */
    v = json_object_get(s, "flavorRef");
    char flavor[300];
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 256)
        snprintf(flavor, sizeof(flavor), "%s", ref_id(json_string_value(v)));
    else if (json_is_integer(v))
        snprintf(flavor, sizeof(flavor), "%lld", (long long)json_integer_value(v));
    else {
        reply_fault(r, 400,
                    "Invalid input for field/attribute flavorRef: a flavor id or link "
                    "is required.");
        goto out;
    }
    /* imageRef */
    char image[300] = "";
    v = json_object_get(s, "imageRef");
    if (v && !json_is_string(v)) {
        reply_fault(r, 400, "Invalid input for field/attribute imageRef: a string is required.");
        goto out;
    }
    if (v && json_string_length(v) > 255) {
        reply_fault(r, 400, "Invalid imageRef provided.");
        goto out;
    }
    if (v)
        snprintf(image, sizeof(image), "%s", ref_id(json_string_value(v)));
    if (json_object_get(s, "block_device_mapping") ||
        json_object_get(s, "block_device_mapping_v2")) {
        json_t *b = json_object_get(s, "block_device_mapping_v2");
        if (!b)
            b = json_object_get(s, "block_device_mapping");
        if (!json_is_array(b)) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute block_device_mapping_v2: an "
                        "array is required.");
            goto out;
        }
        if (json_array_size(b) > 0) {
            reply_fault(r, 400,
                        "Block Device Mapping is Invalid: kova has no block storage "
                        "service; boot from an image instead.");
            goto out;
        }
    }
    if (!image[0]) {
        reply_fault(r, 400, "Missing imageRef attribute");
        goto out;
    }
    if (!kova_is_uuid(image)) {
        reply_fault(r, 400, "Invalid imageRef provided.");
        goto out;
    }
    /* metadata */
    json_t *md = json_object_get(s, "metadata");
    if (md && !check_metadata(r, md, "metadata"))
        goto out;
    if (md && r->api->cfg.quota_metadata_items >= 0 &&
        (long long)json_object_size(md) > r->api->cfg.quota_metadata_items) {
        reply_fault(r, 403, "Quota exceeded for metadata_items: Requested %zu, but limit is %d",
                    json_object_size(md), r->api->cfg.quota_metadata_items);
        goto out;
    }
    /* key_name */
    const char *key_name = NULL;
    if ((v = json_object_get(s, "key_name")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255) {
            reply_fault(r, 400, "Invalid input for field/attribute key_name.");
            goto out;
        }
        key_name = json_string_value(v);
    }
    /* user_data */
    const char *user_data = NULL;
    if ((v = json_object_get(s, "user_data")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > 65535 ||
            !is_base64(json_string_value(v), json_string_length(v))) {
            reply_fault(r, 400, "User data needs to be valid base 64 (at most 65535 bytes).");
            goto out;
        }
        user_data = json_string_value(v);
    }
    /* availability_zone */
    if ((v = json_object_get(s, "availability_zone")) && !json_is_null(v)) {
        if (!json_is_string(v)) {
            reply_fault(r, 400, "Invalid input for field/attribute availability_zone.");
            goto out;
        }
        const char *az = json_string_value(v);
        char *colon = strchr(az, ':');
        size_t azl = colon ? (size_t)(colon - az) : strlen(az);
        if (azl && (azl != strlen(r->api->az) || strncmp(az, r->api->az, azl) != 0)) {
            reply_fault(r, 400, "The requested availability zone is not available");
            goto out;
        }
    }
    /* counts */
    long long min_count = 1, max_count = 1;
    if ((v = json_object_get(s, "min_count")) && !json_as_int(v, 1, 1000, &min_count)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute min_count: an integer >= 1 is "
                    "required.");
        goto out;
    }
    if ((v = json_object_get(s, "max_count")) && !json_as_int(v, 1, 1000, &max_count)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute max_count: an integer >= 1 is "
                    "required.");
        goto out;
    }
    if (!json_object_get(s, "max_count"))
        max_count = min_count;
    if (min_count > max_count) {
        reply_fault(r, 400, "min_count must be <= max_count");
        goto out;
    }
    if ((v = json_object_get(s, "return_reservation_id")) && !json_is_boolean(v)) {
        reply_fault(r, 400, "Invalid input for field/attribute return_reservation_id.");
        goto out;
    }
    bool want_resv = v && json_is_true(v);
    /* networks: kova has no networking service yet */
    if ((v = json_object_get(s, "networks"))) {
        if (json_is_string(v)) {
            if (strcmp(json_string_value(v), "auto") && strcmp(json_string_value(v), "none")) {
                reply_fault(r, 400, "Invalid input for field/attribute networks.");
                goto out;
            }
        } else if (json_is_array(v)) {
            if (json_array_size(v) > 0) {
                json_t *n0 = json_array_get(v, 0);
                json_t *u = json_is_object(n0) ? json_object_get(n0, "uuid") : NULL;
                reply_fault(r, 400, "Network %.100s could not be found.",
                            json_is_string(u) ? json_string_value(u) : "(port or fixed_ip)");
                goto out;
            }
        } else {
            reply_fault(r, 400, "Invalid input for field/attribute networks.");
            goto out;
        }
    }
    /* config_drive */
    const char *config_drive = "";
    if ((v = json_object_get(s, "config_drive")) && !json_is_null(v)) {
        if (json_is_boolean(v))
            config_drive = json_is_true(v) ? "True" : "";
        else if (json_is_string(v)) {
            const char *c = json_string_value(v);
            if (!strcasecmp(c, "true") || !strcasecmp(c, "1") || !strcasecmp(c, "yes"))
                config_drive = "True";
            else if (c[0] && strcasecmp(c, "false") && strcasecmp(c, "0") && strcasecmp(c, "no")) {
                reply_fault(r, 400, "Invalid input for field/attribute config_drive.");
                goto out;
            }
        } else {
            reply_fault(r, 400, "Invalid input for field/attribute config_drive.");
            goto out;
        }
    }
    /* diskConfig */
    const char *disk_config = "MANUAL";
    if ((v = json_object_get(s, "OS-DCF:diskConfig"))) {
        if (!json_is_string(v) ||
            (strcmp(json_string_value(v), "AUTO") && strcmp(json_string_value(v), "MANUAL"))) {
            reply_fault(r, 400, "OS-DCF:diskConfig must be either 'MANUAL' or 'AUTO'.");
            goto out;
        }
        disk_config = json_string_value(v);
    }
    /* access IPs */
    const char *ip4 = "", *ip6 = "";
    unsigned char addr[16];
    if ((v = json_object_get(s, "accessIPv4"))) {
        if (!json_is_string(v) || inet_pton(AF_INET, json_string_value(v), addr) != 1) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute accessIPv4: an IPv4 address "
                        "is required.");
            goto out;
        }
        ip4 = json_string_value(v);
    }
    if ((v = json_object_get(s, "accessIPv6"))) {
        if (!json_is_string(v) || inet_pton(AF_INET6, json_string_value(v), addr) != 1) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute accessIPv6: an IPv6 address "
                        "is required.");
            goto out;
        }
        ip6 = json_string_value(v);
    }
    /* security groups: only "default" exists */
    if ((v = json_object_get(s, "security_groups"))) {
        size_t i;
        json_t *g;
        if (!json_is_array(v)) {
            reply_fault(r, 400, "Invalid input for field/attribute security_groups.");
            goto out;
        }
        json_array_foreach(v, i, g)
        {
            json_t *gn = json_is_object(g) ? json_object_get(g, "name") : NULL;
            if (!json_is_string(gn) || json_object_size(g) != 1) {
                reply_fault(r, 400, "Invalid input for field/attribute security_groups.");
                goto out;
            }
            if (strcmp(json_string_value(gn), "default") != 0) {
                reply_fault(r, 400, "Unable to find security_group with name or id '%.100s'",
                            json_string_value(gn));
                goto out;
            }
        }
    }
    char admin_pass[256];
    if ((v = json_object_get(s, "adminPass"))) {
        if (!json_is_string(v) || json_string_length(v) > 255) {
            reply_fault(r, 400, "Invalid input for field/attribute adminPass.");
            goto out;
        }
        snprintf(admin_pass, sizeof(admin_pass), "%s", json_string_value(v));
    } else {
        gen_password(admin_pass);
    }
    if ((v = json_object_get(s, "personality"))) {
        if (!json_is_array(v)) {
            reply_fault(r, 400, "Invalid input for field/attribute personality.");
            goto out;
        }
        if (json_array_size(v) > 0) {
            reply_fault(r, 400,
                        "Personality files are not supported by kova; use user_data or "
                        "a config drive.");
            goto out;
        }
    }

    /* --- checks against the state, then the insert, in one transaction --- */
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    long long vcpus = 0, ram = 0, disk = 0;
    st = kova_db_prepare(r->db, "SELECT vcpus, ram, disk, disabled FROM flavors WHERE id = ?");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    sqlite3_bind_text(st, 1, flavor, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        reply_fault(r, 400, "Flavor %.100s could not be found.", flavor);
        goto out;
    }
    vcpus = sqlite3_column_int64(st, 0);
    ram = sqlite3_column_int64(st, 1);
    disk = sqlite3_column_int64(st, 2);
    if (sqlite3_column_int(st, 3)) {
        reply_fault(r, 400, "Flavor is disabled.");
        goto out;
    }
    kova_db_done(st);
    st = kova_db_prepare(r->db, "SELECT status, min_disk, min_ram, size FROM images WHERE id = ? "
                                "AND (visibility IN ('public','community','shared') OR owner = ? "
                                "OR ?3)");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    sqlite3_bind_text(st, 1, image, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->auth.project_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, r->auth.is_admin);
    if (sqlite3_step(st) != SQLITE_ROW) {
        reply_fault(r, 400, "Image %.100s could not be found.", image);
        goto out;
    }
    if (strcmp(col(st, 0), "active") != 0) {
        reply_fault(r, 400, "Image %.100s is not active.", image);
        goto out;
    }
    if (ram < sqlite3_column_int64(st, 2)) {
        reply_fault(r, 400, "Flavor's memory is too small for requested image.");
        goto out;
    }
    if (disk > 0 &&
        (disk < sqlite3_column_int64(st, 1) || disk * 1073741824LL < sqlite3_column_int64(st, 3))) {
        reply_fault(r, 400,
                    "Flavor's disk is too small for requested image. Flavor disk is "
                    "%lld bytes, image is %lld bytes.",
                    disk * 1073741824LL, (long long)sqlite3_column_int64(st, 3));
        goto out;
    }
    kova_db_done(st);
    st = NULL;
    if (key_name) {
        st = kova_db_prepare(r->db, "SELECT public_key FROM keypairs WHERE user_id = ? AND "
                                    "name = ?");
        if (!st) {
            reply_db_error(r, -EIO);
            goto out;
        }
        sqlite3_bind_text(st, 1, r->auth.user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key_name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW) {
            reply_fault(r, 400, "Invalid key_name provided.");
            goto out;
        }
    }
    char *key_data = key_name ? strdup(col(st, 0)) : NULL;
    kova_db_done(st);
    st = NULL;
    long long used_i, used_c, used_r;
    if ((e = servers_usage(r->db, r->auth.project_id, &used_i, &used_c, &used_r)) < 0) {
        free(key_data);
        reply_db_error(r, e);
        goto out;
    }
    /* as many as the quota allows, at least min_count */
    const struct kova_api_config *q = &r->api->cfg;
    long long count = max_count;
    while (count >= min_count &&
           ((q->quota_instances >= 0 && used_i + count > q->quota_instances) ||
            (q->quota_cores >= 0 && used_c + count * vcpus > q->quota_cores) ||
            (q->quota_ram >= 0 && used_r + count * ram > q->quota_ram)))
        count--;
    if (count < min_count) {
        const char *what = "instances";
        long long req = min_count, used = used_i, lim = q->quota_instances;
        if (q->quota_cores >= 0 && used_c + min_count * vcpus > q->quota_cores) {
            what = "cores";
            req = min_count * vcpus;
            used = used_c;
            lim = q->quota_cores;
        } else if (q->quota_ram >= 0 && used_r + min_count * ram > q->quota_ram) {
            what = "ram";
            req = min_count * ram;
            used = used_r;
            lim = q->quota_ram;
        }
        free(key_data);
        reply_fault(r, 403,
                    "Quota exceeded for %s: Requested %lld, but already used %lld of %lld "
                    "%s",
                    what, req, used, lim, what);
        goto out;
    }
    char now[32], nowus[32], first_id[37] = "", resv[40];
    kova_time_iso(now, true);
    kova_time_iso(nowus, false);
    char ru[37];
    kova_uuid(ru);
    snprintf(resv, sizeof(resv), "r-%.8s", ru);
    char ids[1000][37];
    for (long long i = 0; i < count; i++) {
        char sname[300];
        if (count > 1)
            snprintf(sname, sizeof(sname), "%s-%lld", name, i + 1);
        else
            snprintf(sname, sizeof(sname), "%s", name);
        kova_uuid(ids[i]);
        st = kova_db_prepare(r->db,
                             "INSERT INTO servers (id, name, project_id, user_id, image_ref, "
                             "flavor_id, vcpus, ram, disk, vm_state, task_state, power_state, "
                             "key_name, key_data, user_data, availability_zone, config_drive, "
                             "access_ipv4, access_ipv6, disk_config, host, created_at, "
                             "updated_at) VALUES (?,?,?,?,?,?,?,?,?,'building','scheduling',0,?,"
                             "?,?,?,?,?,?,?,?,?,?)");
        if (!st) {
            free(key_data);
            reply_db_error(r, -EIO);
            goto out;
        }
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, sname, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, r->auth.project_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, r->auth.user_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, image, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, flavor, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 7, vcpus);
        sqlite3_bind_int64(st, 8, ram);
        sqlite3_bind_int64(st, 9, disk);
        if (key_name) {
            sqlite3_bind_text(st, 10, key_name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 11, key_data, -1, SQLITE_TRANSIENT);
        }
        if (user_data)
            sqlite3_bind_text(st, 12, user_data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 13, r->api->az, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 14, config_drive, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 15, ip4, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 16, ip6, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 17, disk_config, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 18, r->api->host_name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 19, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 20, now, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        kova_db_done(st);
        st = NULL;
        if (rc != SQLITE_DONE) {
            free(key_data);
            reply_db_error(r, kova_db_errno(rc));
            goto out;
        }
        sqlite3_int64 seq = sqlite3_last_insert_rowid(r->db);
        if ((md && (e = insert_metadata(r->db, seq, md)) < 0) ||
            (e = record_action(r, seq, "create", "compute__do_build_and_run_instance", nowus,
                               NULL)) < 0) {
            free(key_data);
            reply_db_error(r, e);
            goto out;
        }
    }
    free(key_data);
    if ((e = kova_db_commit(r->db)) < 0) {
        reply_db_error(r, e);
        goto out;
    }
    snprintf(first_id, sizeof(first_id), "%s", ids[0]);
    for (long long i = 0; i < count; i++)
        kova_compute_submit(r->api->manager, ids[i], KOVA_OP_BUILD);
    if (want_resv) {
        reply_json(r, 202, json_pack("{s:s}", "reservation_id", resv));
        goto out;
    }
    set_location(r, "%s/v2.1/servers/%s", r->base_url, first_id);
    reply_json(r, 202,
               json_pack("{s:{s:s, s:o, s:s, s:[{s:s}], s:s}}", "server", "id", first_id, "links",
                         link_list(r, "servers", first_id), "OS-DCF:diskConfig", disk_config,
                         "security_groups", "name", "default", "adminPass", admin_pass));
out:
    kova_db_done(st);
    json_decref(body);
}

/* ------------------------------------------------------------------ update, delete */

static void server_update(struct kova_req *r)
{
    static const char *const allowed[] = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig",
                                          NULL};
    static const char *const allowed_top[] = {"server", NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    sqlite3_stmt *st = NULL;
    json_t *s = req_json_root(r, body, "server");
    if (!s || !check_keys(r, body, allowed_top, "body") || !check_keys(r, s, allowed, "'server'"))
        goto out;
    json_t *name = json_object_get(s, "name");
    if (name && (!json_is_string(name) || !valid_name(json_string_value(name), 255) ||
                 strlen(json_string_value(name)) != json_string_length(name))) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute name: a string of 1-255 printable "
                    "characters is required.");
        goto out;
    }
    unsigned char addr[16];
    json_t *ip4 = json_object_get(s, "accessIPv4");
    if (ip4 && (!json_is_string(ip4) || (json_string_length(ip4) &&
                                         inet_pton(AF_INET, json_string_value(ip4), addr) != 1))) {
        reply_fault(r, 400, "Invalid input for field/attribute accessIPv4.");
        goto out;
    }
    json_t *ip6 = json_object_get(s, "accessIPv6");
    if (ip6 && (!json_is_string(ip6) || (json_string_length(ip6) &&
                                         inet_pton(AF_INET6, json_string_value(ip6), addr) != 1))) {
        reply_fault(r, 400, "Invalid input for field/attribute accessIPv6.");
        goto out;
    }
    json_t *dc = json_object_get(s, "OS-DCF:diskConfig");
    if (dc && (!json_is_string(dc) || (strcmp(json_string_value(dc), "AUTO") &&
                                       strcmp(json_string_value(dc), "MANUAL")))) {
        reply_fault(r, 400, "OS-DCF:diskConfig must be either 'MANUAL' or 'AUTO'.");
        goto out;
    }
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    st = load_server(r, r->arg[0]);
    if (!st)
        goto out;
    kova_db_done(st);
    char now[32];
    kova_time_iso(now, true);
    st = kova_db_prepare(r->db, "UPDATE servers SET name = coalesce(?2, name), access_ipv4 = "
                                "coalesce(?3, access_ipv4), access_ipv6 = coalesce(?4, "
                                "access_ipv6), disk_config = coalesce(?5, disk_config), "
                                "updated_at = ?6 WHERE id = ?1");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    sqlite3_bind_text(st, 1, r->arg[0], -1, SQLITE_TRANSIENT);
    if (name)
        sqlite3_bind_text(st, 2, json_string_value(name), -1, SQLITE_TRANSIENT);
    if (ip4)
        sqlite3_bind_text(st, 3, json_string_value(ip4), -1, SQLITE_TRANSIENT);
    if (ip6)
        sqlite3_bind_text(st, 4, json_string_value(ip6), -1, SQLITE_TRANSIENT);
    if (dc)
        sqlite3_bind_text(st, 5, json_string_value(dc), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    kova_db_done(st);
    st = NULL;
    if (rc != SQLITE_DONE || (e = kova_db_commit(r->db)) < 0) {
        reply_db_error(r, -EIO);
        goto out;
    }
    st = load_server(r, r->arg[0]);
    if (!st)
        goto out;
    reply_server(r, st, VIEW_UPDATE, 200);
out:
    kova_db_done(st);
    json_decref(body);
}

/* Sets the task state of a server whose row the caller holds in a transaction, records the
 * action, commits. 0 or -errno (a reply is then sent). */
/* In the transaction the caller opened (and checked the server's state in): the action is
 * accepted by the compute manager's state table (the server moves into its task_state), the
 * instance action recorded, and the transaction committed. Replies on failure. */
static int begin_task(struct kova_req *r, sqlite3_int64 seq, const char *id,
                      const struct kova_action *a)
{
    char nowus[32];
    kova_time_iso(nowus, false);
    struct kova_conflict why;
    int e = kova_compute_accept(r->db, id, a, &why);
    if (e == -EBUSY) {
        kova_db_rollback(r->db);
        if (why.task != KOVA_TASK_NONE)
            reply_fault(r, 409, "Cannot '%s' instance %s while it is in task_state %s", a->record,
                        id, kova_task_state_name(why.task));
        else
            reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", a->record, id,
                        kova_vm_state_name(why.vm));
        return e;
    }
    if (e == 0)
        e = record_action(r, seq, a->record, a->event, nowus, NULL);
    if (e == 0)
        e = kova_db_commit(r->db);
    if (e < 0)
        reply_db_error(r, e);
    return e;
}

static void server_delete(struct kova_req *r)
{
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    sqlite3_stmt *st = load_server(r, r->arg[0]);
    if (!st)
        return;
    sqlite3_int64 seq = sqlite3_column_int64(st, C_SEQ);
    const char *task = col(st, C_TASK_STATE);
    bool again = task && !strcmp(task, "deleting");
    char id[37];
    snprintf(id, sizeof(id), "%s", col(st, C_ID));
    kova_db_done(st);
    if (again) { /* already being deleted */
        kova_db_rollback(r->db);
        reply_empty(r, 204);
        return;
    }
    /* The task stops the VMM, removes the instance dir, then the row (metadata and the action
     * log go with it); until then the server shows task_state deleting. */
    if (begin_task(r, seq, id, kova_action_find("delete")) < 0)
        return;
    kova_compute_submit(r->api->manager, id, KOVA_OP_DELETE);
    reply_empty(r, 204);
}

/* ------------------------------------------------------------------ metadata */

/* For metadata writes Nova wants vm_state active|paused|suspended|stopped and no task. */
static bool metadata_writable(struct kova_req *r, sqlite3_stmt *st, const char *what)
{
    const char *vm = col(st, C_VM_STATE);
    if (col(st, C_TASK_STATE) || (strcmp(vm, "active") && strcmp(vm, "paused") &&
                                  strcmp(vm, "suspended") && strcmp(vm, "stopped"))) {
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", what,
                    col(st, C_ID), vm);
        return false;
    }
    return true;
}

static void metadata_show_all(struct kova_req *r)
{
    sqlite3_stmt *st = load_server(r, r->arg[0]);
    if (!st)
        return;
    sqlite3_stmt *mc = NULL;
    json_t *md = metadata_of(r->db, &mc, sqlite3_column_int64(st, C_SEQ));
    kova_db_done(mc);
    kova_db_done(st);
    reply_json(r, 200, json_pack("{s:o}", "metadata", md));
}

/* POST (merge) and PUT (replace) of the whole metadata. */
static void metadata_write(struct kova_req *r, bool replace)
{
    static const char *const allowed[] = {"metadata", NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    sqlite3_stmt *st = NULL;
    json_t *md = json_object_get(body, "metadata");
    if (!check_keys(r, body, allowed, "body") || !md || !check_metadata(r, md, "metadata")) {
        if (!md)
            reply_fault(r, 400, "Invalid input: 'metadata' is a required object.");
        goto out;
    }
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    st = load_server(r, r->arg[0]);
    if (!st || !metadata_writable(r, st, replace ? "update_all_metadata" : "update metadata"))
        goto out;
    sqlite3_int64 seq = sqlite3_column_int64(st, C_SEQ);
    kova_db_done(st);
    st = NULL;
    if (replace) {
        st = kova_db_prepare(r->db, "DELETE FROM server_metadata WHERE server_seq = ?");
        if (!st) {
            reply_db_error(r, -EIO);
            goto out;
        }
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_step(st);
        kova_db_done(st);
        st = NULL;
    }
    if ((e = insert_metadata(r->db, seq, md)) < 0) {
        reply_db_error(r, e);
        goto out;
    }
    sqlite3_stmt *mc = NULL;
    json_t *all = metadata_of(r->db, &mc, seq);
    kova_db_done(mc);
    if (r->api->cfg.quota_metadata_items >= 0 &&
        (long long)json_object_size(all) > r->api->cfg.quota_metadata_items) {
        json_decref(all);
        reply_fault(r, 403, "Quota exceeded for metadata_items: the limit is %d",
                    r->api->cfg.quota_metadata_items);
        goto out;
    }
    if ((e = kova_db_commit(r->db)) < 0) {
        json_decref(all);
        reply_db_error(r, e);
        goto out;
    }
    reply_json(r, 200, json_pack("{s:o}", "metadata", all));
out:
    kova_db_done(st);
    json_decref(body);
}

static void metadata_update(struct kova_req *r)
{
    metadata_write(r, false);
}

static void metadata_replace(struct kova_req *r)
{
    metadata_write(r, true);
}

static void metadata_show(struct kova_req *r)
{
    sqlite3_stmt *st = load_server(r, r->arg[0]);
    if (!st)
        return;
    sqlite3_stmt *mc = NULL;
    json_t *md = metadata_of(r->db, &mc, sqlite3_column_int64(st, C_SEQ));
    kova_db_done(mc);
    kova_db_done(st);
    json_t *v = json_object_get(md, r->arg[1]);
    if (v)
        reply_json(r, 200, json_pack("{s:{s:O}}", "meta", r->arg[1], v));
    else
        reply_fault(r, 404, "Metadata item was not found");
    json_decref(md);
}

static void metadata_put_item(struct kova_req *r)
{
    static const char *const allowed[] = {"meta", NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    sqlite3_stmt *st = NULL;
    json_t *meta = json_object_get(body, "meta");
    if (!check_keys(r, body, allowed, "body"))
        goto out;
    if (!meta || !json_is_object(meta) || json_object_size(meta) != 1) {
        reply_fault(r, 400, "Request body must contain exactly one metadata item under 'meta'");
        goto out;
    }
    if (!json_object_get(meta, r->arg[1])) {
        reply_fault(r, 400, "Request body and URI mismatch");
        goto out;
    }
    if (!check_metadata(r, meta, "meta"))
        goto out;
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    st = load_server(r, r->arg[0]);
    if (!st || !metadata_writable(r, st, "update metadata"))
        goto out;
    sqlite3_int64 seq = sqlite3_column_int64(st, C_SEQ);
    kova_db_done(st);
    st = NULL;
    sqlite3_stmt *mc = NULL;
    json_t *all = metadata_of(r->db, &mc, seq);
    kova_db_done(mc);
    size_t n = json_object_size(all) + (json_object_get(all, r->arg[1]) ? 0 : 1);
    json_decref(all);
    if (r->api->cfg.quota_metadata_items >= 0 && (long long)n > r->api->cfg.quota_metadata_items) {
        reply_fault(r, 403, "Quota exceeded for metadata_items: the limit is %d",
                    r->api->cfg.quota_metadata_items);
        goto out;
    }
    if ((e = insert_metadata(r->db, seq, meta)) < 0 || (e = kova_db_commit(r->db)) < 0) {
        reply_db_error(r, e);
        goto out;
    }
    reply_json(r, 200, json_pack("{s:O}", "meta", meta));
out:
    kova_db_done(st);
    json_decref(body);
}

static void metadata_delete_item(struct kova_req *r)
{
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    sqlite3_stmt *st = load_server(r, r->arg[0]);
    if (!st)
        return;
    if (!metadata_writable(r, st, "delete metadata")) {
        kova_db_done(st);
        return;
    }
    sqlite3_int64 seq = sqlite3_column_int64(st, C_SEQ);
    kova_db_done(st);
    st = kova_db_prepare(r->db, "DELETE FROM server_metadata WHERE server_seq = ? AND key = ?");
    if (!st) {
        reply_db_error(r, -EIO);
        return;
    }
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, r->arg[1], -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int n = sqlite3_changes(r->db);
    kova_db_done(st);
    if (rc != SQLITE_DONE) {
        reply_db_error(r, -EIO);
        return;
    }
    if (n == 0) {
        reply_fault(r, 404, "Metadata item was not found");
        return;
    }
    if ((e = kova_db_commit(r->db)) < 0) {
        reply_db_error(r, e);
        return;
    }
    reply_empty(r, 204);
}

/* ------------------------------------------------------------------ actions */

/* Console output: the last `length` lines of <instances>/<id>/console.log (at most the last
 * 100 KiB read), control characters other than \t and \n removed. */
static void console_output(struct kova_req *r, sqlite3_stmt *st, json_t *arg)
{
    long long length = -1;
    if (!json_is_object(arg)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute os-getConsoleOutput: an object is "
                    "required.");
        return;
    }
    static const char *const allowed[] = {"length", NULL};
    if (!check_keys(r, arg, allowed, "os-getConsoleOutput"))
        return;
    json_t *l = json_object_get(arg, "length");
    bool given = l && !json_is_null(l);
    if (given) {
        if (!json_as_int(l, -1, 0x7fffffff, &length)) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute length: an integer >= -1 is "
                        "required.");
            return;
        }
    }
    if (!strcmp(col(st, C_VM_STATE), "building")) {
        reply_fault(r, 409, "Instance %s is not ready", col(st, C_ID));
        return;
    }
    char err[256];
    char *text = NULL;
    size_t tlen = 0;
    int e = kova_compute_console_output(r->api->manager, col(st, C_ID),
                                        given ? (int64_t)length : KOVA_COMPUTE_CONSOLE_ALL, &text,
                                        &tlen, err, sizeof(err));
    if (e < 0) {
        kova_log(0, "server %s: console log: %s", col(st, C_ID), err);
        reply_fault(r, 500, "Unable to get console output");
        return;
    }
    json_t *out = json_stringn(text, tlen);
    free(text);
    reply_json(r, 200, json_pack("{s:o}", "output", out ? out : json_string("")));
}

/* The server's state as the one state table (kova/states.h) sees it. */
static bool action_allowed(sqlite3_stmt *st, const struct kova_action *a)
{
    enum kova_vm_state vm;
    enum kova_task_state task;
    kova_state_read(col(st, C_VM_STATE), col(st, C_TASK_STATE), &vm, &task);
    return kova_action_allowed(a, vm, task);
}

static void state_conflict(struct kova_req *r, sqlite3_stmt *st, const char *action)
{
    const char *task = col(st, C_TASK_STATE);
    if (task)
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in task_state %s", action,
                    col(st, C_ID), task);
    else
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", action,
                    col(st, C_ID), col(st, C_VM_STATE));
}

static void server_action(struct kova_req *r)
{
    static const char *const rebuild_keys[] = {"imageRef",
                                               "name",
                                               "adminPass",
                                               "metadata",
                                               "accessIPv4",
                                               "accessIPv6",
                                               "OS-DCF:diskConfig",
                                               "personality",
                                               "preserve_ephemeral",
                                               "key_name",
                                               "user_data",
                                               "description",
                                               NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    sqlite3_stmt *st = NULL;
    if (json_object_size(body) != 1) {
        reply_fault(r, 400, "Exactly one action is expected in the request body.");
        goto out;
    }
    const char *action = json_object_iter_key(json_object_iter(body));
    json_t *arg = json_object_get(body, action);
    if (!strcmp(action, "os-getConsoleOutput")) {
        st = load_server(r, r->arg[0]);
        if (st)
            console_output(r, st, arg);
        goto out;
    }
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    st = load_server(r, r->arg[0]);
    if (!st)
        goto out;
    sqlite3_int64 seq = sqlite3_column_int64(st, C_SEQ);
    char id[37];
    snprintf(id, sizeof(id), "%s", col(st, C_ID));
    if (!strcmp(action, "reboot")) {
        static const char *const allowed[] = {"type", NULL};
        json_t *t = json_is_object(arg) ? json_object_get(arg, "type") : NULL;
        if (!json_is_object(arg) || !check_keys(r, arg, allowed, "reboot") || !json_is_string(t) ||
            (strcasecmp(json_string_value(t), "SOFT") &&
             strcasecmp(json_string_value(t), "HARD"))) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute reboot: 'type' must be SOFT "
                        "or HARD.");
            goto out;
        }
        bool hard = !strcasecmp(json_string_value(t), "HARD");
        const struct kova_action *ra = kova_action_find(hard ? "reboot-hard" : "reboot-soft");
        if (!action_allowed(st, ra)) {
            state_conflict(r, st, "reboot");
            goto out;
        }
        kova_db_done(st);
        st = NULL;
        if (begin_task(r, seq, id, ra) < 0)
            goto out;
        kova_compute_submit(r->api->manager, id, ra->op);
        reply_empty(r, 202);
        goto out;
    }
    const struct kova_action *a = kova_action_find(action);
    /* create, delete and the reboot rows are not action keys */
    if (a && (a->op == KOVA_OP_BUILD || a->op == KOVA_OP_DELETE || !strncmp(action, "reboot-", 7)))
        a = NULL;
    if (a) {
        char image[300] = "";
        char rebuild_pass[256] = "";
        const char *new_name = NULL;
        if (!strcmp(action, "rebuild")) {
            json_t *img = json_is_object(arg) ? json_object_get(arg, "imageRef") : NULL;
            if (!json_is_string(img) || json_string_length(img) > 255) {
                reply_fault(r, 400,
                            "Invalid input for field/attribute rebuild: 'imageRef' is "
                            "required.");
                goto out;
            }
            if (!check_keys(r, arg, rebuild_keys, "rebuild"))
                goto out;
            json_t *nm = json_object_get(arg, "name");
            if (nm && (!json_is_string(nm) || !valid_name(json_string_value(nm), 255) ||
                       strlen(json_string_value(nm)) != json_string_length(nm))) {
                reply_fault(r, 400,
                            "Invalid input for field/attribute name: a string of 1-255 "
                            "printable characters is required.");
                goto out;
            }
            new_name = nm ? json_string_value(nm) : NULL;
            json_t *pw = json_object_get(arg, "adminPass");
            if (pw && (!json_is_string(pw) || json_string_length(pw) > 255 ||
                       strlen(json_string_value(pw)) != json_string_length(pw))) {
                reply_fault(r, 400, "Invalid input for field/attribute adminPass.");
                goto out;
            }
            if (pw)
                snprintf(rebuild_pass, sizeof(rebuild_pass), "%s", json_string_value(pw));
            else
                gen_password(rebuild_pass);
            snprintf(image, sizeof(image), "%s", ref_id(json_string_value(img)));
            if (!kova_is_uuid(image)) {
                reply_fault(r, 400, "Invalid imageRef provided.");
                goto out;
            }
        }
        if (a->vm_states != KOVA_ANY_STATE && !action_allowed(st, a)) {
            state_conflict(r, st, action);
            goto out;
        }
        if (a->op == KOVA_OP_NONE) {
            reply_fault(r, 501, "%s is not implemented by kova yet.", action);
            goto out;
        }
        kova_db_done(st);
        st = NULL;
        if (image[0]) {
            st = kova_db_prepare(r->db, "SELECT status FROM images WHERE id = ? AND (visibility "
                                        "IN ('public','community','shared') OR owner = ? OR ?3)");
            if (!st) {
                reply_db_error(r, -EIO);
                goto out;
            }
            sqlite3_bind_text(st, 1, image, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, r->auth.project_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 3, r->auth.is_admin);
            if (sqlite3_step(st) != SQLITE_ROW) {
                reply_fault(r, 400, "Image %.100s could not be found.", image);
                goto out;
            }
            if (strcmp(col(st, 0), "active") != 0) {
                reply_fault(r, 400, "Image %.100s is not active.", image);
                goto out;
            }
            kova_db_done(st);
            st = kova_db_prepare(r->db, "UPDATE servers SET image_ref = ?2, name = coalesce(?3, "
                                        "name) WHERE seq = ?1");
            if (!st) {
                reply_db_error(r, -EIO);
                goto out;
            }
            sqlite3_bind_int64(st, 1, seq);
            sqlite3_bind_text(st, 2, image, -1, SQLITE_TRANSIENT);
            if (new_name)
                sqlite3_bind_text(st, 3, new_name, -1, SQLITE_TRANSIENT);
            int rc = sqlite3_step(st);
            kova_db_done(st);
            st = NULL;
            if (rc != SQLITE_DONE) {
                reply_db_error(r, kova_db_errno(rc));
                goto out;
            }
        }
        if (begin_task(r, seq, id, a) < 0)
            goto out;
        kova_compute_submit(r->api->manager, id, a->op);
        if (a->op == KOVA_OP_REBUILD && (st = load_server(r, id))) {
            reply_server_pass(r, st, VIEW_UPDATE, 202, rebuild_pass);
            goto out;
        }
        if (a->op != KOVA_OP_REBUILD)
            reply_empty(r, 202);
        goto out;
    }
    reply_fault(r, 400, "There is no such action: %.100s", action);
out:
    kova_db_done(st);
    json_decref(body);
}

/* ------------------------------------------------------------------ os-instance-actions */

static json_t *action_json(sqlite3_stmt *st, const char *server_id)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s}", "action", col(st, 1), "instance_uuid",
                     server_id, "message", json_str_or_null(col(st, 6)), "project_id", col(st, 4),
                     "request_id", col(st, 2), "start_time", col(st, 5), "user_id", col(st, 3));
}

/* The server's (r->arg[0]) instance actions, newest first, with `more` ("" or "AND ...", ?2
 * free for the caller) added to the WHERE clause. Replies and returns NULL on failure. */
static sqlite3_stmt *actions_query(struct kova_req *r, const char *more)
{
    sqlite3_stmt *s = load_server(r, r->arg[0]);
    if (!s)
        return NULL;
    sqlite3_int64 seq = sqlite3_column_int64(s, C_SEQ);
    kova_db_done(s);
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT id, action, request_id, user_id, project_id, start_time, message FROM "
             "instance_actions WHERE server_seq = ?1 %s ORDER BY id DESC",
             more);
    sqlite3_stmt *st = kova_db_prepare(r->db, q);
    if (!st) {
        reply_db_error(r, -EIO);
        return NULL;
    }
    sqlite3_bind_int64(st, 1, seq);
    return st;
}

static void actions_list(struct kova_req *r)
{
    sqlite3_stmt *st = actions_query(r, "");
    if (!st)
        return;
    json_t *arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, action_json(st, r->arg[0]));
    kova_db_done(st);
    reply_json(r, 200, json_pack("{s:o}", "instanceActions", arr));
}

static void action_show(struct kova_req *r)
{
    sqlite3_stmt *st = actions_query(r, "AND request_id = ?2");
    if (!st)
        return;
    sqlite3_bind_text(st, 2, r->arg[1], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        kova_db_done(st);
        reply_fault(r, 404, "Action for request_id %.100s on instance %s not found", r->arg[1],
                    r->arg[0]);
        return;
    }
    json_t *a = action_json(st, r->arg[0]);
    sqlite3_int64 aid = sqlite3_column_int64(st, 0);
    kova_db_done(st);
    if (r->auth.is_admin) { /* Nova's policy shows events to admins only */
        st = kova_db_prepare(r->db, "SELECT event, start_time, finish_time, result, traceback "
                                    "FROM instance_action_events WHERE action_id = ? ORDER BY id");
        if (st)
            sqlite3_bind_int64(st, 1, aid);
        json_t *ev = json_array();
        while (st && sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(ev, json_pack("{s:s, s:s, s:o, s:o, s:o}", "event", col(st, 0),
                                                "start_time", col(st, 1), "finish_time",
                                                json_str_or_null(col(st, 2)), "result",
                                                json_str_or_null(col(st, 3)), "traceback",
                                                json_str_or_null(col(st, 4))));
        kova_db_done(st);
        json_object_set_new(a, "events", ev);
    }
    reply_json(r, 200, json_pack("{s:o}", "instanceAction", a));
}

/* ------------------------------------------------------------------ limits */

static void limits_show(struct kova_req *r)
{
    const struct kova_api_config *q = &r->api->cfg;
    const char *tenant = req_query(r, "tenant_id");
    const char *proj = (tenant && r->auth.is_admin) ? tenant : r->auth.project_id;
    long long inst = 0, cores = 0, ram = 0;
    int e = servers_usage(r->db, proj, &inst, &cores, &ram);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    json_t *abs = json_pack(
        "{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:i, "
        "s:i, s:i}",
        "maxServerMeta", q->quota_metadata_items, "maxPersonality", 5, "maxPersonalitySize", 10240,
        "maxImageMeta", 128, "maxTotalInstances", q->quota_instances, "maxTotalCores",
        q->quota_cores, "maxTotalRAMSize", q->quota_ram, "maxTotalKeypairs", q->quota_key_pairs,
        "maxSecurityGroups", 10, "maxSecurityGroupRules", 20, "maxTotalFloatingIps", 10,
        "maxServerGroups", 10, "maxServerGroupMembers", 10, "totalInstancesUsed", (json_int_t)inst,
        "totalCoresUsed", (json_int_t)cores, "totalRAMUsed", (json_int_t)ram,
        "totalSecurityGroupsUsed", 0, "totalFloatingIpsUsed", 0, "totalServerGroupsUsed", 0);
    reply_json(r, 200, json_pack("{s:{s:[], s:o}}", "limits", "rate", "absolute", abs));
}

const struct kova_route kova_server_routes[] = {
    {SVC_COMPUTE, "GET", "/servers", server_list, 0},
    {SVC_COMPUTE, "POST", "/servers", server_create, 0},
    {SVC_COMPUTE, "GET", "/servers/detail", server_detail, 0},
    {SVC_COMPUTE, "GET", "/servers/*", server_show, 0},
    {SVC_COMPUTE, "PUT", "/servers/*", server_update, 0},
    {SVC_COMPUTE, "DELETE", "/servers/*", server_delete, 0},
    {SVC_COMPUTE, "POST", "/servers/*/action", server_action, 0},
    {SVC_COMPUTE, "GET", "/servers/*/metadata", metadata_show_all, 0},
    {SVC_COMPUTE, "POST", "/servers/*/metadata", metadata_update, 0},
    {SVC_COMPUTE, "PUT", "/servers/*/metadata", metadata_replace, 0},
    {SVC_COMPUTE, "GET", "/servers/*/metadata/*", metadata_show, 0},
    {SVC_COMPUTE, "PUT", "/servers/*/metadata/*", metadata_put_item, 0},
    {SVC_COMPUTE, "DELETE", "/servers/*/metadata/*", metadata_delete_item, 0},
    {SVC_COMPUTE, "GET", "/servers/*/os-instance-actions", actions_list, 0},
    {SVC_COMPUTE, "GET", "/servers/*/os-instance-actions/*", action_show, 0},
    {SVC_COMPUTE, "GET", "/limits", limits_show, 0},
    {0, NULL, NULL, NULL, 0},
};

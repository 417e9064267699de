/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /servers: create, list, detail, show, update, delete, metadata, actions, os-instance-actions,
 * and /limits (whose usage comes from the servers table).
 *
 * A handler validates, checks the state and records the request in one transaction (the rows
 * through db/'s typed access, the action through kova_compute_accept), answers, and the compute
 * manager (compute/) runs the slow part of every state change (build, stop, start, reboot,
 * pause, rebuild, delete).
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

/* The server's metadata as a JSON object (*out), keys in order. */
static int meta_json(sqlite3 *conn, const char *id, json_t **out)
{
    struct kova_db_meta *v;
    size_t n;
    *out = NULL;
    int e = kova_db_server_meta_list(conn, id, &v, &n);
    if (e < 0)
        return e;
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, v[i].key, json_string(v[i].value));
    free(v);
    *out = o;
    return o ? 0 : -ENOMEM;
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

/* The 2.1 server body of a view, rendered straight to text (list calls render up to max_limit
 * of them per request). */
static void render_server(struct sbuf *b, struct kova_req *r, const struct kova_db_server_view *v,
                          struct hid_cache *hc, int view)
{
    const char *id = v->id;
    const char *vm = v->vm_state;
    const char *task = v->task_state;
    const char *status = server_status(vm, task);
    sb_put(b, "{\"id\":");
    sb_str(b, id);
    sb_key(b, "name");
    sb_str(b, v->name);
    sb_key(b, "status");
    sb_str(b, status);
    sb_key(b, "tenant_id");
    sb_str(b, v->project_id);
    sb_key(b, "user_id");
    sb_str(b, v->user_id);
    sb_key(b, "metadata");
    sb_put(b, v->metadata);
    sb_key(b, "hostId");
    sb_str(b, cached_host_id(hc, v->project_id, v->host));
    sb_key(b, "image");
    const char *image = v->image_ref;
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
    sb_str(b, v->flavor_id);
    sb_put(b, ",\"links\":[");
    sb_link(b, r, "bookmark", false, "flavors", v->flavor_id);
    sb_put(b, "]}");
    sb_key(b, "created");
    sb_str(b, v->created_at);
    sb_key(b, "updated");
    sb_str(b, v->updated_at);
    sb_key(b, "addresses");
    sb_put(b, v->addresses);
    sb_key(b, "accessIPv4");
    sb_str(b, v->access_ipv4);
    sb_key(b, "accessIPv6");
    sb_str(b, v->access_ipv6);
    sb_key(b, "links");
    sb_put(b, "[");
    sb_link(b, r, "self", true, "servers", id);
    sb_put(b, ",");
    sb_link(b, r, "bookmark", false, "servers", id);
    sb_put(b, "]");
    sb_key(b, "OS-DCF:diskConfig");
    sb_str(b, v->disk_config);
    sb_key(b, "config_drive");
    sb_str(b, v->config_drive);
    sb_key(b, "key_name");
    sb_str(b, v->key_name);
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
    if (v->has_fault && (!strcmp(vm, "error") || !strcmp(vm, "deleted"))) {
        int code = v->fault_code;
        sb_key(b, "fault");
        sb_printf(b, "{\"code\":%d,\"created\":", code);
        sb_str(b, v->fault_created);
        sb_put(b, ",\"message\":");
        sb_str(b, v->fault_message ? v->fault_message : "");
        if ((r->auth.is_admin || code != 500) && v->fault_details) {
            sb_put(b, ",\"details\":");
            sb_str(b, v->fault_details);
        }
        sb_put(b, "}");
    }
    if (view == VIEW_FULL) {
        sb_key(b, "OS-EXT-AZ:availability_zone");
        sb_str(b, v->availability_zone ? v->availability_zone : "");
        sb_key(b, "OS-EXT-STS:vm_state");
        sb_str(b, vm);
        sb_key(b, "OS-EXT-STS:task_state");
        sb_str(b, task);
        sb_key(b, "OS-EXT-STS:power_state");
        sb_printf(b, "%d", v->power_state);
        sb_key(b, "OS-SRV-USG:launched_at");
        sb_str(b, v->launched_at);
        sb_key(b, "OS-SRV-USG:terminated_at");
        sb_str(b, v->terminated_at);
        if (r->auth.is_admin) {
            sb_key(b, "OS-EXT-SRV-ATTR:host");
            sb_str(b, v->host);
            sb_key(b, "OS-EXT-SRV-ATTR:hypervisor_hostname");
            sb_str(b, v->host);
            sb_key(b, "OS-EXT-SRV-ATTR:instance_name");
            sb_printf(b, "\"instance-%08llx\"", (unsigned long long)v->seq);
        }
    }
    sb_put(b, "}");
}

/* {"server": {...}}; admin_pass (rebuild's reply, as Nova gives it) is added when not NULL. */
static void reply_server_pass(struct kova_req *r, const struct kova_db_server_view *v, int view,
                              int status, const char *admin_pass)
{
    struct sbuf b = {0};
    struct hid_cache hc = {0};
    sb_put(&b, "{\"server\":");
    render_server(&b, r, v, &hc, view);
    if (admin_pass && !b.oom && b.len && b.p[b.len - 1] == '}') {
        b.p[--b.len] = 0;
        sb_put(&b, ",\"adminPass\":");
        sb_str(&b, admin_pass);
        sb_put(&b, "}");
    }
    sb_put(&b, "}");
    reply_sbuf(r, status, &b);
}

static void reply_server(struct kova_req *r, const struct kova_db_server_view *v, int view,
                         int status)
{
    reply_server_pass(r, v, view, status, NULL);
}

/* The project whose servers the caller sees (NULL: an administrator sees every one). */
static const char *scope(struct kova_req *r)
{
    return r->auth.is_admin ? NULL : r->auth.project_id;
}

/* Loads a server visible to the caller (own project, or any for admins) into *v (free it with
 * kova_db_server_view_free). Replies 404 (or 500) and returns false when there is none. */
static bool load_server(struct kova_req *r, sqlite3 *conn, const char *id,
                        struct kova_db_server_view *v)
{
    memset(v, 0, sizeof(*v));
    if (!kova_is_uuid(id)) {
        reply_fault(r, 404, "Instance %.100s could not be found.", id);
        return false;
    }
    int e = kova_db_server_view_get(conn, id, scope(r), v);
    if (e == -ENOENT)
        reply_fault(r, 404, "Instance %.100s could not be found.", id);
    else if (e < 0)
        reply_db_error(r, e);
    return e == 0;
}

bool server_visible(struct kova_req *r, sqlite3 *conn, const char *id,
                    struct kova_db_server_view *v)
{
    return load_server(r, conn, id, v);
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

/* A list reply being rendered (list_one). */
struct list_ctx {
    struct kova_req *r;
    bool detail;
    const char *status; /* NULL: any */
    regex_t *re;        /* NULL: any name */
    int limit, n;
    struct sbuf b;
    struct hid_cache hc;
    char last[KOVA_DB_ID_MAX]; /* the id of the last server rendered */
};

/* Renders a server of the list when it passes the filters the database does not apply; stops
 * at the limit. */
static int list_one(const struct kova_db_server_view *v, void *arg)
{
    struct list_ctx *c = arg;
    if (c->n >= c->limit)
        return 1;
    if (c->status && strcasecmp(c->status, server_status(v->vm_state, v->task_state)) != 0)
        return 0;
    if (c->re && regexec(c->re, v->name, 0, NULL, 0) != 0)
        return 0;
    if (c->n++)
        sb_put(&c->b, ",");
    if (c->detail) {
        render_server(&c->b, c->r, v, &c->hc, VIEW_FULL);
    } else {
        sb_put(&c->b, "{\"id\":");
        sb_str(&c->b, v->id);
        sb_put(&c->b, ",\"name\":");
        sb_str(&c->b, v->name);
        sb_put(&c->b, ",\"links\":[");
        sb_link(&c->b, c->r, "self", true, "servers", v->id);
        sb_put(&c->b, ",");
        sb_link(&c->b, c->r, "bookmark", false, "servers", v->id);
        sb_put(&c->b, "]}");
    }
    snprintf(c->last, sizeof(c->last), "%s", v->id);
    return 0;
}

/* Nova's sort keys that its server list accepts and ignores (SERVER_LIST_IGNORE_SORT_KEY), and
 * those it ignores for callers other than admins. */
static const char *const sort_ignored[] = {"architecture",
                                           "cell_name",
                                           "cleaned",
                                           "default_ephemeral_device",
                                           "default_swap_device",
                                           "deleted",
                                           "deleted_at",
                                           "disable_terminate",
                                           "ephemeral_gb",
                                           "ephemeral_key_uuid",
                                           "id",
                                           "key_data",
                                           "launched_on",
                                           "locked",
                                           "memory_mb",
                                           "os_type",
                                           "reservation_id",
                                           "root_gb",
                                           "shutdown_terminate",
                                           "user_data",
                                           "vcpus",
                                           "vm_mode",
                                           NULL};
static const char *const sort_admin_only[] = {"host", "node", NULL};

static bool listed(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

/* The list's order from sort_key / sort_dir (each repeatable, as in Nova: the i-th dir goes
 * with the i-th key, keys without one take the first dir, "desc" when none is given). false
 * after a 400 for an unknown key or dir, more dirs than keys, or more keys than kova sorts by. */
static bool list_order(struct kova_req *r, struct kova_db_sort *sort, int *nsort)
{
    const char *keys[KOVA_DB_SORT_MAX + 1], *dirs[KOVA_DB_SORT_MAX + 1];
    int nk = req_query_all(r, "sort_key", keys, KOVA_DB_SORT_MAX + 1);
    int nd = req_query_all(r, "sort_dir", dirs, KOVA_DB_SORT_MAX + 1);
    *nsort = 0;
    if (nk > KOVA_DB_SORT_MAX) {
        reply_fault(r, 400, "Invalid input for query parameters sort_key: at most %d are allowed.",
                    KOVA_DB_SORT_MAX);
        return false;
    }
    if (nd > nk) {
        reply_fault(r, 400, "Sort direction size exceeds sort key size");
        return false;
    }
    for (int i = 0; i < nd; i++) {
        if (strcmp(dirs[i], "asc") && strcmp(dirs[i], "desc")) {
            reply_fault(r, 400,
                        "Invalid input for query parameters sort_dir. Value: %.100s. It is not "
                        "one of 'asc', 'desc'.",
                        dirs[i]);
            return false;
        }
    }
    bool first_desc = nd ? !strcmp(dirs[0], "desc") : true;
    for (int i = 0; i < nk; i++) {
        int k = kova_db_server_sort_key(keys[i]);
        bool ignored = listed(sort_ignored, keys[i]) ||
                       (!r->auth.is_admin && listed(sort_admin_only, keys[i]));
        if (k < 0 && !ignored) {
            reply_fault(r, 400,
                        "Invalid input for query parameters sort_key. Value: %.100s. It is not "
                        "one of the server list's sort keys.",
                        keys[i]);
            return false;
        }
        if (ignored)
            continue;
        sort[*nsort].key = k;
        sort[*nsort].desc = i < nd ? !strcmp(dirs[i], "desc") : first_desc;
        (*nsort)++;
    }
    return true;
}

/* How many repetitions the interval x{m,n} at *pp asks for (n, or m+1 for "{m,}", m for
 * "{m}"; at least 1), with *pp moved past it; 0 when it is not one (then regcomp decides what
 * it is). */
static size_t interval_count(const char **pp)
{
    const char *p = *pp + 1;
    size_t m = 0, n = 0, digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        m = m > 100000 ? m : m * 10 + (size_t)(*p - '0');
    if (!digits && *p != ',') /* glibc reads "{,n}" as "{0,n}" */
        return 0;
    n = m;
    if (*p == ',') {
        n = m + 1;
        if (p[1] >= '0' && p[1] <= '9')
            for (n = 0, p++; *p >= '0' && *p <= '9'; p++)
                n = n > 100000 ? n : n * 10 + (size_t)(*p - '0');
        else
            p++;
    }
    if (*p != '}')
        return 0;
    *pp = p + 1;
    return n > m ? (n ? n : 1) : (m ? m : 1);
}

/*
 * An upper bound of the size regcomp() makes of an extended regular expression, in copies of
 * its atoms: glibc expands bounded repetition, so x{m,n} is n copies of x, and "(.*){1,32000}"
 * (255 characters are plenty) took gigabytes and the agent with it. *, + and ? count one copy
 * more. Stops counting past budget (and returns more than it).
 */
static size_t regex_cost(const char *p, size_t budget)
{
    struct {
        size_t sum, last; /* the level's cost so far; the cost of its last atom */
    } st[32] = {{0, 0}};
    int d = 0;
    while (*p) {
        size_t atom = 1, k;
        switch (*p) {
        case '(':
            if (++d == (int)(sizeof(st) / sizeof(st[0])))
                return budget + 1;
            st[d].sum = st[d].last = 0;
            p++;
            continue;
        case ')':
            p++;
            if (d > 0) {
                atom = st[d].sum ? st[d].sum : 1;
                d--;
            }
            break;
        case '|':
            st[d].last = 0;
            p++;
            continue;
        case '*':
        case '+':
        case '?':
            st[d].sum += st[d].last;
            st[d].last *= 2;
            p++;
            goto check;
        case '{':
            if ((k = interval_count(&p)) == 0) {
                p++;
                break;
            }
            st[d].sum += st[d].last * (k - 1);
            st[d].last *= k;
            goto check;
        case '\\':
            p += p[1] ? 2 : 1;
            break;
        case '[':
            /* a bracket expression: "]" first is a member, as are "[:class:]" and the like */
            p++;
            p += *p == '^';
            p += *p == ']';
            while (*p && *p != ']') {
                if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
                    const char *e = strchr(p + 2, p[1]);
                    p = e && e[1] == ']' ? e + 2 : p + 1;
                } else {
                    p++;
                }
            }
            p += *p == ']';
            break;
        default:
            p++;
            break;
        }
        st[d].sum += atom;
        st[d].last = atom;
    check:
        if (st[d].sum > budget)
            return budget + 1;
    }
    size_t total = 0;
    for (int i = 0; i <= d; i++)
        total += st[i].sum;
    return total;
}

/* changes-since (Nova: servers updated at or after it; kova keeps no deleted ones) into the
 * form the servers table keeps times in; "" when absent. false after a 400 for a bad time. */
static bool list_since(struct kova_req *r, char out[32])
{
    out[0] = 0;
    const char *since = req_query(r, "changes-since");
    if (!since)
        return true;
    time_t t;
    struct tm tm;
    if (kova_parse_time(since, &t) < 0 || !gmtime_r(&t, &tm) ||
        !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        reply_fault(r, 400,
                    "Invalid input for query parameters changes-since. Value: %.100s. It is not "
                    "a 'date-time'.",
                    since);
        return false;
    }
    return true;
}

/*
 * GET /servers and /servers/detail. Replies are cached (api->list_cache) under a key naming
 * every input besides the database (req_cache_key) and the database generation read before
 * the first read: any committed write, from any thread, retires them. Only 200s are stored;
 * an input that fails gets the same failure every time, cache or not, since the key holds it.
 */
static void server_list(struct kova_req *r)
{
    bool detail = route_variant(r) == LIST_DETAIL;
    /* all_tenants as Nova reads it (oslo bool_from_string, strict): another project's servers
     * are an administrator's to list (policy servers:{index,detail}:get_all_tenants) */
    bool all_tenants = false;
    const char *all = req_query(r, "all_tenants");
    if (all) {
        static const char *const yes[] = {"1", "t", "true", "on", "y", "yes"};
        static const char *const no[] = {"0", "f", "false", "off", "n", "no"};
        bool known = false;
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (strcasecmp(all, yes[i]) == 0)
                known = all_tenants = true;
            if (strcasecmp(all, no[i]) == 0)
                known = true;
        }
        if (!known) {
            reply_fault(r, 400,
                        "Invalid input received: Unrecognized value '%.64s', acceptable values "
                        "are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', "
                        "'yes'",
                        all);
            return;
        }
        if (all_tenants && !r->auth.is_admin) {
            reply_fault(r, 403,
                        "Policy doesn't allow os_compute_api:servers:%s:get_all_tenants to be "
                        "performed.",
                        detail ? "detail" : "index");
            return;
        }
    }
    struct kova_cache *cache = r->api->list_cache;
    struct sbuf key = {0};
    uint64_t gen = 0;
    bool cacheable = cache && kova_db_idle(r->db) &&
                     kova_db_generation(r->api->db, r->db, &gen) == 0 &&
                     req_cache_key(r, detail ? "servers/detail" : "servers", &key);
    if (cacheable) {
        struct kova_centry *e = kova_cache_get(cache, key.p, key.len, gen);
        if (e) {
            reply_centry(r, 200, e);
            free(key.p);
            return;
        }
    }
    int limit, nsort;
    struct kova_db_sort sort[KOVA_DB_SORT_MAX];
    char since[32];
    if (!req_limit(r, &limit) || !list_order(r, sort, &nsort) || !list_since(r, since)) {
        free(key.p);
        return;
    }
    const char *name = req_query(r, "name");
    const char *status = req_query(r, "status");
    const char *image = req_query(r, "image");
    const char *flavor = req_query(r, "flavor");
    const char *marker = req_query(r, "marker");
    const char *proj = req_query(r, "project_id");
    if (!proj)
        proj = req_query(r, "tenant_id");
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
        if (strlen(name) > 255 || backref || regex_cost(name, 1000) > 1000 ||
            regcomp(&re, name, REG_EXTENDED | REG_NOSUB) != 0) {
            reply_fault(r, 400,
                        "Invalid name filter (a regular expression of at most 255 "
                        "characters, without back-references or huge repetitions, is "
                        "expected)");
            free(key.p);
            return;
        }
        have_re = true;
    }
    struct list_ctx c = {.r = r, .detail = detail, .status = status, .limit = limit};
    c.re = have_re ? &re : NULL;
    sb_put(&c.b, "{\"servers\":[");
    const struct kova_db_server_filter f = {proj, image, flavor, marker, since[0] ? since : NULL,
                                            sort, nsort};
    int err = kova_db_server_view_each(r->db, &f, list_one, &c);
    if (err < 0) {
        free(c.b.p);
        if (err == -ENOENT)
            reply_fault(r, 400, "marker [%.100s] not found", marker);
        else
            reply_db_error(r, err);
        goto out;
    }
    struct sbuf b = c.b;
    sb_put(&b, "]");
    if (c.last[0] && c.n == limit) {
        /* Like Nova, the next link keeps every other query argument (filters, all_tenants). */
        static const char *const paging[] = {"limit", "marker", NULL};
        struct sbuf href = {0};
        sb_printf(&href, "%s/v2.1/servers%s?", r->base_url, detail ? "/detail" : "");
        req_query_copy(r, paging, &href);
        sb_printf(&href, "limit=%d&marker=%s", limit, c.last);
        sb_put(&b, ",\"servers_links\":[{\"rel\":\"next\",\"href\":");
        sb_str(&b, href.oom ? "" : href.p);
        b.oom |= href.oom;
        free(href.p);
        sb_put(&b, "}]");
    }
    sb_put(&b, "}");
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
    if (have_re)
        regfree(&re);
    free(key.p);
}

static void server_show(struct kova_req *r)
{
    struct kova_db_server_view v;
    if (!load_server(r, r->db, r->arg[0], &v))
        return;
    reply_server(r, &v, VIEW_FULL, 200);
    kova_db_server_view_free(&v);
}

/* ------------------------------------------------------------------ helpers for writes */

/* The request as the instance actions record it. */
static struct kova_db_requester requester(struct kova_req *r)
{
    return (struct kova_db_requester){r->request_id, r->auth.user_id, r->auth.project_id};
}

/* Validates a metadata object as Nova's schema: keys of 1-255 characters of [a-zA-Z0-9-_:. ],
 * values strings of at most 255. */
static bool check_metadata(struct kova_req *r, json_t *md, const char *what)
{
    static const char key_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789-_:. ";
    if (!json_is_object(md)) {
        reply_fault(r, 400, "Invalid input for field/attribute %s: an object is required.", what);
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v)
    {
        size_t kl = strlen(k);
        if (kl == 0 || kl > 255 || strspn(k, key_chars) != kl) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute %s: keys must be 1-255 "
                        "characters of [a-zA-Z0-9-_:. ].",
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

/* A checked metadata object (check_metadata) as items (malloc'd array in *out, free() it). */
static int meta_from_json(json_t *md, struct kova_db_meta **out, size_t *n)
{
    *n = 0;
    *out = calloc(json_object_size(md) ? json_object_size(md) : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v)
    {
        snprintf((*out)[*n].key, sizeof((*out)[*n].key), "%s", k);
        snprintf((*out)[*n].value, sizeof((*out)[*n].value), "%s", json_string_value(v));
        (*n)++;
    }
    return 0;
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

/* Whether the caller may boot this image: as Glance shows images (public, community, the own
 * project's, any for admins) and also shared ones. Replies 400 when the image is not there (or
 * not visible) or not active (then -ECANCELED); else 0 with *im filled (kova_db_image_free) or
 * a database error. */
static int boot_image(struct kova_req *r, sqlite3 *conn, const char *id, struct kova_db_image *im)
{
    int e = kova_db_image_get(conn, id, im);
    if (e == 0 && strcmp(im->visibility, "public") && strcmp(im->visibility, "community") &&
        strcmp(im->visibility, "shared") &&
        !(im->has_owner && !strcmp(im->owner, r->auth.project_id)) && !r->auth.is_admin) {
        kova_db_image_free(im);
        e = -ENOENT;
    }
    if (e == -ENOENT) {
        reply_fault(r, 400, "Image %.100s could not be found.", id);
        return -ECANCELED;
    }
    if (e < 0)
        return e;
    if (strcmp(im->status, "active") != 0) {
        kova_db_image_free(im);
        reply_fault(r, 400, "Image %.100s is not active.", id);
        return -ECANCELED;
    }
    return 0;
}

/* A create's checks against the state and its rows, in the transaction create_txn runs in. */
struct create {
    struct kova_req *r;
    const char *flavor, *image, *key_name;
    long long min_count, max_count;
    const struct net_request *nets; /* each server's NICs */
    struct kova_db_server_new s;    /* the request's part of the new rows */
    long long count;                /* out: how many servers were made (in ids) */
    char ids[1000][37];
    const char *idp[1000];
};

/* Replies a fault itself (then -ECANCELED); a database error is returned unreplied. */
static int create_txn(sqlite3 *conn, void *arg)
{
    struct create *c = arg;
    struct kova_req *r = c->r;
    c->count = 0;
    struct kova_db_flavor fl;
    struct kova_db_image im = {0};
    struct kova_db_keypair kp = {0};
    int e = kova_db_flavor_get(conn, c->flavor, &fl);
    if (e == 0 && !fl.is_public && !r->auth.is_admin)
        e = -ENOENT; /* a private flavor: admins only (kova keeps no flavor access lists) */
    if (e == -ENOENT) {
        reply_fault(r, 400, "Flavor %.100s could not be found.", c->flavor);
        goto out;
    }
    if (e < 0)
        goto out;
    if (fl.disabled) {
        reply_fault(r, 400, "Flavor is disabled.");
        goto out;
    }
    long long vcpus = fl.vcpus, ram = fl.ram, disk = fl.disk;
    if ((e = boot_image(r, conn, c->image, &im)) < 0)
        goto out;
    if (ram < im.min_ram) {
        reply_fault(r, 400, "Flavor's memory is too small for requested image.");
        goto out;
    }
    if (disk > 0 && (disk < im.min_disk || disk * 1073741824LL < im.size)) {
        reply_fault(r, 400,
                    "Flavor's disk is too small for requested image. Flavor disk is "
                    "%lld bytes, image is %lld bytes.",
                    disk * 1073741824LL, im.size);
        goto out;
    }
    if (c->key_name) {
        e = kova_db_keypair_get(conn, r->auth.user_id, c->key_name, &kp);
        if (e == -ENOENT) {
            reply_fault(r, 400, "Invalid key_name provided.");
            goto out;
        }
        if (e < 0)
            goto out;
    }
    struct kova_db_server_usage u;
    if ((e = kova_db_server_usage_project(conn, r->auth.project_id, &u)) < 0)
        goto out;
    long long used_i = u.count, used_c = u.vcpus, used_r = u.ram;
    long long min_count = c->min_count;
    /* as many as the quota allows, at least min_count */
    const struct kova_api_config *q = &r->api->cfg;
    long long count = c->max_count;
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
        reply_fault(r, 403,
                    "Quota exceeded for %s: Requested %lld, but already used %lld of %lld "
                    "%s",
                    what, req, used, lim, what);
        goto out;
    }
    for (long long i = 0; i < count; i++) {
        kova_uuid(c->ids[i]);
        c->idp[i] = c->ids[i];
    }
    c->s.vcpus = vcpus;
    c->s.ram = ram;
    c->s.disk = disk;
    c->s.key_name = c->key_name;
    c->s.key_data = c->key_name ? kp.public_key : NULL;
    if ((e = kova_db_server_create(conn, &c->s, c->idp, (size_t)count)) < 0)
        goto out;
    for (long long i = 0; i < count; i++)
        if ((e = net_ports_create(r, conn, c->nets, c->ids[i])) < 0)
            goto out;
    c->count = count;
out:
    kova_db_image_free(&im);
    kova_db_keypair_free(&kp);
    return r->replied ? -ECANCELED : e;
}

/* OS-DCF:diskConfig of the server object s: *out set to it when present ("AUTO" or "MANUAL"),
 * else left as it is. false after replying 400. */
static bool check_disk_config(struct kova_req *r, json_t *s, const char **out)
{
    json_t *v = json_object_get(s, "OS-DCF:diskConfig");
    if (!v)
        return true;
    const char *dc = json_string_value(v);
    if (!dc || (strcmp(dc, "AUTO") && strcmp(dc, "MANUAL"))) {
        reply_fault(r, 400, "OS-DCF:diskConfig must be either 'MANUAL' or 'AUTO'.");
        return false;
    }
    *out = dc;
    return true;
}

/* accessIPv4 (af AF_INET) or accessIPv6 of s: *out set to it when present and an address (or
 * "", when allow_empty: an update clearing it), else left as it is. false after replying 400. */
static bool check_access_ip(struct kova_req *r, json_t *s, int af, bool allow_empty,
                            const char **out)
{
    const char *key = af == AF_INET ? "accessIPv4" : "accessIPv6";
    json_t *v = json_object_get(s, key);
    if (!v)
        return true;
    const char *ip = json_string_value(v);
    unsigned char addr[16];
    if (!ip || (!(allow_empty && !ip[0]) && inet_pton(af, ip, addr) != 1)) {
        reply_fault(r, 400, "Invalid input for field/attribute %s: an IPv%d address is required.",
                    key, af == AF_INET ? 4 : 6);
        return false;
    }
    *out = ip;
    return true;
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
    json_t *s = req_json_root(r, body, "server");
    if (!s || !check_keys(r, body, allowed_top, "body") || !check_keys(r, s, allowed, "'server'"))
        goto out;
    json_t *v;
    /* scheduler hints: kova has one host and no server groups, but they are Nova's object */
    for (int i = 1; i < 3; i++) {
        if ((v = json_object_get(body, allowed_top[i])) && !json_is_object(v)) {
            reply_fault(r, 400, "Invalid input for field/attribute %s: an object is required.",
                        allowed_top[i]);
            goto out;
        }
    }
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
    /* networks: the NICs, checked against kova's networks (their ports are made with the
     * servers, in one transaction) */
    struct net_request nets;
    if (!net_request_parse(r, json_object_get(s, "networks"), max_count, &nets))
        goto out;
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
    if (r->api->cfg.force_config_drive) /* Nova's [DEFAULT] force_config_drive */
        config_drive = "True";
    const char *disk_config = "MANUAL", *ip4 = "", *ip6 = "";
    if (!check_disk_config(r, s, &disk_config) || !check_access_ip(r, s, AF_INET, false, &ip4) ||
        !check_access_ip(r, s, AF_INET6, false, &ip6))
        goto out;
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
    struct kova_db_meta *meta = NULL;
    size_t nmeta = 0;
    if (md && meta_from_json(md, &meta, &nmeta) < 0) {
        reply_fault(r, 500, "out of memory");
        goto out;
    }
    struct create c = {
        .r = r,
        .flavor = flavor,
        .image = image,
        .key_name = key_name,
        .min_count = min_count,
        .max_count = max_count,
        .nets = &nets,
        .s = {.name = name,
              .project_id = r->auth.project_id,
              .user_id = r->auth.user_id,
              .image_ref = image,
              .flavor_id = flavor,
              .user_data = user_data,
              .availability_zone = r->api->az,
              .config_drive = config_drive,
              .access_ipv4 = ip4,
              .access_ipv6 = ip6,
              .disk_config = disk_config,
              .host = r->api->host_name,
              .metadata = meta,
              .nmeta = nmeta,
              .request_id = r->request_id},
    };
    int e = kova_db_txn_conn(r->db, create_txn, &c);
    free(meta);
    if (e < 0) {
        if (!r->replied)
            reply_db_error(r, e);
        goto out;
    }
    char first_id[37], resv[40], ru[37];
    kova_uuid(ru);
    snprintf(resv, sizeof(resv), "r-%.8s", ru);
    snprintf(first_id, sizeof(first_id), "%s", c.ids[0]);
    if (nets.n)
        net_ports_changed(r->api); /* DHCP knows the ports before a guest asks */
    for (long long i = 0; i < c.count; i++)
        kova_compute_submit(r->api->manager, c.ids[i], KOVA_OP_BUILD);
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
    const char *ip4 = NULL, *ip6 = NULL, *dc = NULL;
    if (!check_access_ip(r, s, AF_INET, true, &ip4) ||
        !check_access_ip(r, s, AF_INET6, true, &ip6) || !check_disk_config(r, s, &dc))
        goto out;
    struct kova_db_server_edit ed = {name ? json_string_value(name) : NULL, ip4, ip6, dc};
    struct kova_db_server_view v;
    if (!kova_is_uuid(r->arg[0])) {
        reply_fault(r, 404, "Instance %.100s could not be found.", r->arg[0]);
        goto out;
    }
    int e = kova_db_server_update(r->db, r->arg[0], scope(r), &ed);
    if (e == -ENOENT) {
        reply_fault(r, 404, "Instance %.100s could not be found.", r->arg[0]);
        goto out;
    }
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    if (!load_server(r, r->db, r->arg[0], &v))
        goto out;
    reply_server(r, &v, VIEW_UPDATE, 200);
    kova_db_server_view_free(&v);
out:
    json_decref(body);
}

/* In the transaction of a handler's txn function (which checked the server's state): the
 * action is accepted by the compute manager's state table (the server moves into its
 * task_state) and the instance action recorded. Replies 409 itself on a state conflict (then
 * -ECANCELED); a database error is returned unreplied. */
static int begin_task(struct kova_req *r, sqlite3 *conn, const char *id,
                      const struct kova_action *a)
{
    struct kova_conflict why;
    int e = kova_compute_accept(conn, id, a, &why);
    if (e == -EBUSY) {
        if (why.task != KOVA_TASK_NONE)
            reply_fault(r, 409, "Cannot '%s' instance %s while it is in task_state %s", a->record,
                        id, kova_task_state_name(why.task));
        else
            reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", a->record, id,
                        kova_vm_state_name(why.vm));
        return -ECANCELED;
    }
    const struct kova_db_requester q = requester(r);
    if (e == 0)
        e = kova_db_action_start(conn, id, a->record, a->event, &q);
    return e;
}

/* Ends a handler whose txn function failed: a fault it replied stands, else a database
 * error. */
static void txn_failed(struct kova_req *r, int e)
{
    if (!r->replied)
        reply_db_error(r, e);
}

/* A request that changes the server of its URL in a txn function (which kova_db_txn_conn may run
 * again after a busy commit: the outputs are set afresh each time). */
struct change {
    struct kova_req *r;
    json_t *arg;                    /* what the handler hands in (an action's argument, metadata) */
    const char *action;             /* server_action: the action's name */
    bool replace;                   /* metadata_write: PUT (replace), not POST (merge) */
    char id[37];                    /* out: the server's id as stored */
    const struct kova_action *task; /* out: the task to submit after the commit */
    char admin_pass[256];           /* out: a rebuild's */
    json_t *out;                    /* out: the handler's reply */
};

/* A delete that finds the server being deleted already: nothing to do (rolled back). */
#define ALREADY_DELETING (-EALREADY)

static int delete_txn(sqlite3 *conn, void *arg)
{
    struct change *c = arg;
    struct kova_db_server_view v;
    if (!load_server(c->r, conn, c->r->arg[0], &v))
        return -ECANCELED;
    bool again = v.task_state && !strcmp(v.task_state, "deleting");
    snprintf(c->id, sizeof(c->id), "%s", v.id);
    kova_db_server_view_free(&v);
    if (again)
        return ALREADY_DELETING;
    /* The task stops the VMM, removes the instance dir, then the row (metadata and the action
     * log go with it); until then the server shows task_state deleting. */
    return begin_task(c->r, conn, c->id, kova_action_find("delete"));
}

static void server_delete(struct kova_req *r)
{
    struct change c = {.r = r};
    int e = kova_db_txn_conn(r->db, delete_txn, &c);
    if (e < 0 && e != ALREADY_DELETING) {
        txn_failed(r, e);
        return;
    }
    if (e == 0)
        kova_compute_submit(r->api->manager, c.id, KOVA_OP_DELETE);
    reply_empty(r, 204);
}

/* ------------------------------------------------------------------ metadata */

/* For metadata writes Nova wants vm_state active|paused|suspended|stopped and no task. */
static bool metadata_writable(struct kova_req *r, const struct kova_db_server_view *v,
                              const char *what)
{
    const char *vm = v->vm_state;
    if (v->task_state || (strcmp(vm, "active") && strcmp(vm, "paused") && strcmp(vm, "suspended") &&
                          strcmp(vm, "stopped"))) {
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", what, v->id, vm);
        return false;
    }
    return true;
}

/* Loads the server of the URL for a metadata write (404, 409 replied: false); its id in c->id. */
static bool metadata_server(struct change *c, sqlite3 *conn, const char *what)
{
    struct kova_db_server_view v;
    if (!load_server(c->r, conn, c->r->arg[0], &v))
        return false;
    bool ok = metadata_writable(c->r, &v, what);
    snprintf(c->id, sizeof(c->id), "%s", v.id);
    kova_db_server_view_free(&v);
    return ok;
}

/* Sets the items of the object c->arg (replace: instead of all others), in the transaction of a
 * txn function; 403 replied when they are more than the quota allows (then -ECANCELED). */
static int metadata_set(struct change *c, sqlite3 *conn, bool replace)
{
    struct kova_db_meta *v;
    size_t n;
    int e = meta_from_json(c->arg, &v, &n);
    if (e < 0)
        return e;
    e = kova_db_server_meta_set(conn, c->id, v, n, replace, c->r->api->cfg.quota_metadata_items);
    free(v);
    if (e == -EDQUOT) {
        reply_fault(c->r, 403, "Quota exceeded for metadata_items: the limit is %d",
                    c->r->api->cfg.quota_metadata_items);
        return -ECANCELED;
    }
    return e;
}

/* The metadata of the server r->arg[0] as an object (a new reference), or NULL after replying
 * 404 (no such server) or 500. */
static json_t *server_metadata(struct kova_req *r)
{
    struct kova_db_server_view v;
    if (!load_server(r, r->db, r->arg[0], &v))
        return NULL;
    json_t *md;
    int e = meta_json(r->db, v.id, &md);
    kova_db_server_view_free(&v);
    if (e < 0) {
        reply_db_error(r, e);
        return NULL;
    }
    return md;
}

static void metadata_show_all(struct kova_req *r)
{
    json_t *md = server_metadata(r);
    if (md)
        reply_json(r, 200, json_pack("{s:o}", "metadata", md));
}

static int metadata_write_txn(sqlite3 *conn, void *arg)
{
    struct change *c = arg;
    json_decref(c->out);
    c->out = NULL;
    if (!metadata_server(c, conn, c->replace ? "update_all_metadata" : "update metadata"))
        return -ECANCELED;
    int e = metadata_set(c, conn, c->replace);
    if (e == 0)
        e = meta_json(conn, c->id, &c->out);
    return e;
}

enum { META_MERGE, META_REPLACE }; /* the routes' variant */

/* POST (merge) and PUT (replace) of the whole metadata. */
static void metadata_write(struct kova_req *r)
{
    bool replace = route_variant(r) == META_REPLACE;
    static const char *const allowed[] = {"metadata", NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *md = json_object_get(body, "metadata");
    if (!check_keys(r, body, allowed, "body") || !md || !check_metadata(r, md, "metadata")) {
        if (!md)
            reply_fault(r, 400, "Invalid input: 'metadata' is a required object.");
        goto out;
    }
    struct change c = {.r = r, .arg = md, .replace = replace};
    int e = kova_db_txn_conn(r->db, metadata_write_txn, &c);
    if (e < 0) {
        json_decref(c.out);
        txn_failed(r, e);
        goto out;
    }
    reply_json(r, 200, json_pack("{s:o}", "metadata", c.out));
out:
    json_decref(body);
}

static void metadata_show(struct kova_req *r)
{
    json_t *md = server_metadata(r);
    if (!md)
        return;
    json_t *val = json_object_get(md, r->arg[1]);
    if (val)
        reply_json(r, 200, json_pack("{s:{s:O}}", "meta", r->arg[1], val));
    else
        reply_fault(r, 404, "Metadata item was not found");
    json_decref(md);
}

static int metadata_put_item_txn(sqlite3 *conn, void *arg)
{
    struct change *c = arg;
    if (!metadata_server(c, conn, "update metadata"))
        return -ECANCELED;
    return metadata_set(c, conn, false);
}

static void metadata_put_item(struct kova_req *r)
{
    static const char *const allowed[] = {"meta", NULL};
    json_t *body = req_json(r);
    if (!body)
        return;
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
    struct change c = {.r = r, .arg = meta};
    int e = kova_db_txn_conn(r->db, metadata_put_item_txn, &c);
    if (e < 0) {
        txn_failed(r, e);
        goto out;
    }
    reply_json(r, 200, json_pack("{s:O}", "meta", meta));
out:
    json_decref(body);
}

static int metadata_delete_item_txn(sqlite3 *conn, void *arg)
{
    struct change *c = arg;
    if (!metadata_server(c, conn, "delete metadata"))
        return -ECANCELED;
    int e = kova_db_server_meta_delete(conn, c->id, c->r->arg[1]);
    if (e == -ENOENT) {
        reply_fault(c->r, 404, "Metadata item was not found");
        return -ECANCELED;
    }
    return e;
}

static void metadata_delete_item(struct kova_req *r)
{
    struct change c = {.r = r};
    int e = kova_db_txn_conn(r->db, metadata_delete_item_txn, &c);
    if (e < 0) {
        txn_failed(r, e);
        return;
    }
    reply_empty(r, 204);
}

/* ------------------------------------------------------------------ actions */

/* ------------------------------------------------------------------ actions */

/* Console output: the last `length` lines of <instances>/<id>/console.log (at most the last
 * 100 KiB read), control characters other than \t and \n removed. */
static void console_output(struct kova_req *r, const struct kova_db_server_view *v, json_t *arg)
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
    if (!strcmp(v->vm_state, "building")) {
        reply_fault(r, 409, "Instance %s is not ready", v->id);
        return;
    }
    char err[256];
    char *text = NULL;
    size_t tlen = 0;
    int e = kova_compute_console_output(r->api->manager, v->id,
                                        given ? (int64_t)length : KOVA_COMPUTE_CONSOLE_ALL, &text,
                                        &tlen, err, sizeof(err));
    if (e < 0) {
        kova_log(0, "server %s: console log: %s", v->id, err);
        reply_fault(r, 500, "Unable to get console output");
        return;
    }
    json_t *out = json_stringn(text, tlen);
    free(text);
    reply_json(r, 200, json_pack("{s:o}", "output", out ? out : json_string("")));
}

/* The server's state as the one state table (kova/states.h) sees it. */
static bool action_allowed(const struct kova_db_server_view *v, const struct kova_action *a)
{
    enum kova_vm_state vm;
    enum kova_task_state task;
    kova_state_read(v->vm_state, v->task_state, &vm, &task);
    return kova_action_allowed(a, vm, task);
}

static void state_conflict(struct kova_req *r, const struct kova_db_server_view *v,
                           const char *action)
{
    const char *task = v->task_state;
    if (task)
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in task_state %s", action, v->id,
                    task);
    else
        reply_fault(r, 409, "Cannot '%s' instance %s while it is in vm_state %s", action, v->id,
                    v->vm_state);
}

/* The members of a rebuild besides imageRef, name and adminPass (which action_txn reads), as
 * Nova's 2.1 schema has them: no other key (description, key_name, user_data are 2.19, 2.54,
 * 2.57), each of its type. false after replying 400. */
static bool check_rebuild(struct kova_req *r, json_t *a)
{
    static const char *const keys[] = {
        "imageRef",           "name",       "adminPass",         "metadata",
        "accessIPv4",         "accessIPv6", "OS-DCF:diskConfig", "personality",
        "preserve_ephemeral", NULL};
    const char *ignored = NULL;
    if (!check_keys(r, a, keys, "rebuild") || !check_disk_config(r, a, &ignored) ||
        !check_access_ip(r, a, AF_INET, false, &ignored) ||
        !check_access_ip(r, a, AF_INET6, false, &ignored))
        return false;
    json_t *v = json_object_get(a, "metadata");
    if (v && !check_metadata(r, v, "metadata"))
        return false;
    static const char *const bools[] = {"true", "1", "on", "yes", "false", "0", "off", "no"};
    v = json_object_get(a, "preserve_ephemeral");
    bool is_bool = json_is_boolean(v); /* Nova's parameter_types.boolean: these strings too */
    for (size_t i = 0; json_is_string(v) && i < sizeof(bools) / sizeof(bools[0]); i++)
        is_bool |= strcasecmp(json_string_value(v), bools[i]) == 0;
    if (v && !is_bool) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute preserve_ephemeral: a boolean is "
                    "required.");
        return false;
    }
    v = json_object_get(a, "personality");
    if (v && (!json_is_array(v) || json_array_size(v) > 0)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute personality: personality files are not "
                    "supported by kova.");
        return false;
    }
    return true;
}

/* What a rebuild (c->arg, checked by check_rebuild) sets besides image and name, as Nova:
 * metadata (replacing the server's: 403 replied past the quota, then -ECANCELED), accessIPv4,
 * accessIPv6, OS-DCF:diskConfig. */
static int rebuild_set(struct change *c, sqlite3 *conn)
{
    json_t *a = c->arg, *md = json_object_get(a, "metadata");
    int e = 0;
    if (md) {
        c->arg = md;
        e = metadata_set(c, conn, true);
        c->arg = a;
    }
    struct kova_db_server_edit ed = {NULL, NULL, NULL, NULL};
    if (e == 0 && check_access_ip(c->r, a, AF_INET, false, &ed.access_ipv4) &&
        check_access_ip(c->r, a, AF_INET6, false, &ed.access_ipv6) &&
        check_disk_config(c->r, a, &ed.disk_config) &&
        (ed.access_ipv4 || ed.access_ipv6 || ed.disk_config))
        e = kova_db_server_update(conn, c->id, NULL, &ed);
    return e;
}

/* A server action's checks and its state change, in the transaction kova_db_txn_conn runs it
 * in: c->task is the task to submit after the commit. Replies a fault itself (then
 * -ECANCELED); a database error is returned unreplied. */
static int action_txn(sqlite3 *conn, void *arg)
{
    struct change *c = arg;
    struct kova_req *r = c->r;
    const char *action = c->action;
    json_t *act_arg = c->arg;
    c->task = NULL;
    struct kova_db_server_view v;
    if (!load_server(r, conn, r->arg[0], &v))
        return -ECANCELED;
    const char *id = c->id;
    snprintf(c->id, sizeof(c->id), "%s", v.id);
    int e = 0;
    if (!strcmp(action, "reboot")) {
        static const char *const allowed[] = {"type", NULL};
        json_t *t = json_is_object(act_arg) ? json_object_get(act_arg, "type") : NULL;
        if (!json_is_object(act_arg) || !check_keys(r, act_arg, allowed, "reboot") ||
            !json_is_string(t) ||
            (strcasecmp(json_string_value(t), "SOFT") &&
             strcasecmp(json_string_value(t), "HARD"))) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute reboot: 'type' must be SOFT "
                        "or HARD.");
            goto out;
        }
        bool hard = !strcasecmp(json_string_value(t), "HARD");
        const struct kova_action *ra = kova_action_find(hard ? "reboot-hard" : "reboot-soft");
        if (!action_allowed(&v, ra)) {
            state_conflict(r, &v, "reboot");
            goto out;
        }
        if ((e = begin_task(r, conn, id, ra)) == 0)
            c->task = ra;
        goto out;
    }
    const struct kova_action *a = kova_action_find(action);
    /* create, delete and the reboot rows are not action keys */
    if (a && (a->op == KOVA_OP_BUILD || a->op == KOVA_OP_DELETE || !strncmp(action, "reboot-", 7)))
        a = NULL;
    if (!a) {
        reply_fault(r, 400, "There is no such action: %.100s", action);
        goto out;
    }
    char image[300] = "";
    const char *new_name = NULL;
    if (!strcmp(action, "rebuild")) {
        json_t *img = json_is_object(act_arg) ? json_object_get(act_arg, "imageRef") : NULL;
        if (!json_is_string(img) || json_string_length(img) > 255) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute rebuild: 'imageRef' is "
                        "required.");
            goto out;
        }
        if (!check_rebuild(r, act_arg))
            goto out;
        json_t *nm = json_object_get(act_arg, "name");
        if (nm && (!json_is_string(nm) || !valid_name(json_string_value(nm), 255) ||
                   strlen(json_string_value(nm)) != json_string_length(nm))) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute name: a string of 1-255 "
                        "printable characters is required.");
            goto out;
        }
        new_name = nm ? json_string_value(nm) : NULL;
        json_t *pw = json_object_get(act_arg, "adminPass");
        if (pw && (!json_is_string(pw) || json_string_length(pw) > 255 ||
                   strlen(json_string_value(pw)) != json_string_length(pw))) {
            reply_fault(r, 400, "Invalid input for field/attribute adminPass.");
            goto out;
        }
        if (pw)
            snprintf(c->admin_pass, sizeof(c->admin_pass), "%s", json_string_value(pw));
        else
            gen_password(c->admin_pass);
        snprintf(image, sizeof(image), "%s", ref_id(json_string_value(img)));
        if (!kova_is_uuid(image)) {
            reply_fault(r, 400, "Invalid imageRef provided.");
            goto out;
        }
    }
    if (a->op != KOVA_OP_NONE && a->op != KOVA_OP_REBUILD && !json_is_null(act_arg) &&
        !(json_is_object(act_arg) && json_object_size(act_arg) == 0)) {
        /* os-start, os-stop, pause, unpause: Nova's body is {"<action>": null} */
        reply_fault(r, 400, "Invalid input for field/attribute %.100s: null is required.", action);
        goto out;
    }
    if (a->vm_states != KOVA_ANY_STATE && !action_allowed(&v, a)) {
        state_conflict(r, &v, action);
        goto out;
    }
    if (a->op == KOVA_OP_NONE) {
        reply_fault(r, 501, "%s is not implemented by kova yet.", action);
        goto out;
    }
    if (image[0]) {
        struct kova_db_image im;
        if ((e = boot_image(r, conn, image, &im)) < 0)
            goto out;
        kova_db_image_free(&im);
        if ((e = kova_db_server_set_image(conn, id, image, new_name)) < 0 ||
            (e = rebuild_set(c, conn)) < 0)
            goto out;
    }
    if ((e = begin_task(r, conn, id, a)) == 0)
        c->task = a;
out:
    kova_db_server_view_free(&v);
    return r->replied ? -ECANCELED : e;
}

static void server_action(struct kova_req *r)
{
    json_t *body = req_json(r);
    if (!body)
        return;
    if (json_object_size(body) != 1) {
        reply_fault(r, 400, "Exactly one action is expected in the request body.");
        goto out;
    }
    const char *action = json_object_iter_key(json_object_iter(body));
    json_t *arg = json_object_get(body, action);
    struct kova_db_server_view v;
    if (!strcmp(action, "os-getConsoleOutput")) {
        if (load_server(r, r->db, r->arg[0], &v)) {
            console_output(r, &v, arg);
            kova_db_server_view_free(&v);
        }
        goto out;
    }
    struct change c = {.r = r, .arg = arg, .action = action};
    int e = kova_db_txn_conn(r->db, action_txn, &c);
    if (e < 0) {
        txn_failed(r, e);
        goto out;
    }
    kova_compute_submit(r->api->manager, c.id, c.task->op);
    if (c.task->op != KOVA_OP_REBUILD) {
        reply_empty(r, 202);
    } else if (load_server(r, r->db, c.id, &v)) {
        reply_server_pass(r, &v, VIEW_UPDATE, 202, c.admin_pass);
        kova_db_server_view_free(&v);
    }
out:
    json_decref(body);
}

/* ------------------------------------------------------------------ os-instance-actions */

static json_t *action_json(const struct kova_db_action *a, const char *server_id)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s}", "action", a->action, "instance_uuid",
                     server_id, "message", json_str_or_null(a->has_message ? a->message : NULL),
                     "project_id", a->project_id, "request_id", a->request_id, "start_time",
                     a->start_time, "user_id", a->user_id);
}

/* Whether the server of the URL is there for the caller (404 or 500 replied when not). */
static bool actions_server(struct kova_req *r)
{
    struct kova_db_server_view v;
    if (!load_server(r, r->db, r->arg[0], &v))
        return false;
    kova_db_server_view_free(&v);
    return true;
}

static void actions_list(struct kova_req *r)
{
    if (!actions_server(r))
        return;
    struct kova_db_action *v;
    size_t n;
    int e = kova_db_action_list(r->db, r->arg[0], &v, &n);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, action_json(&v[i], r->arg[0]));
    free(v);
    reply_json(r, 200, json_pack("{s:o}", "instanceActions", arr));
}

static void action_show(struct kova_req *r)
{
    if (!actions_server(r))
        return;
    struct kova_db_action act;
    int e = kova_db_action_get(r->db, r->arg[0], r->arg[1], &act);
    if (e == -ENOENT) {
        reply_fault(r, 404, "Action for request_id %.100s on instance %s not found", r->arg[1],
                    r->arg[0]);
        return;
    }
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    json_t *a = action_json(&act, r->arg[0]);
    if (r->auth.is_admin) { /* Nova's policy shows events to admins only */
        struct kova_db_action_event *ev;
        size_t n;
        if ((e = kova_db_action_events(r->db, act.id, &ev, &n)) < 0) {
            json_decref(a);
            reply_db_error(r, e);
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:o, s:o, s:o}", "event", ev[i].event, "start_time",
                               ev[i].start_time, "finish_time",
                               json_str_or_null(ev[i].has_finish ? ev[i].finish_time : NULL),
                               "result", json_str_or_null(ev[i].has_result ? ev[i].result : NULL),
                               "traceback", json_str_or_null(ev[i].traceback)));
        kova_db_action_events_free(ev, n);
        json_object_set_new(a, "events", arr);
    }
    reply_json(r, 200, json_pack("{s:o}", "instanceAction", a));
}

/* ------------------------------------------------------------------ limits */

static void limits_show(struct kova_req *r)
{
    const struct kova_api_config *q = &r->api->cfg;
    const char *tenant = req_query(r, "tenant_id");
    if (tenant && !r->auth.is_admin) { /* Nova: os_compute_api:limits:other_project, admins' */
        reply_fault(r, 403,
                    "Policy doesn't allow os_compute_api:limits:other_project to be "
                    "performed.");
        return;
    }
    const char *proj = tenant ? tenant : r->auth.project_id;
    struct kova_db_server_usage u;
    int e = kova_db_server_usage_project(r->db, proj, &u);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    long long inst = u.count, cores = u.vcpus, ram = u.ram;
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
    {SVC_COMPUTE, "GET", "/servers", server_list, ROUTE_VARIANT(LIST_BRIEF), RULE_READER},
    {SVC_COMPUTE, "POST", "/servers", server_create, 0, RULE_MEMBER},
    {SVC_COMPUTE, "GET", "/servers/detail", server_list, ROUTE_VARIANT(LIST_DETAIL), RULE_READER},
    {SVC_COMPUTE, "GET", "/servers/*", server_show, 0, RULE_READER},
    {SVC_COMPUTE, "PUT", "/servers/*", server_update, 0, RULE_MEMBER},
    {SVC_COMPUTE, "DELETE", "/servers/*", server_delete, 0, RULE_MEMBER},
    {SVC_COMPUTE, "POST", "/servers/*/action", server_action, 0, RULE_MEMBER},
    {SVC_COMPUTE, "GET", "/servers/*/metadata", metadata_show_all, 0, RULE_READER},
    {SVC_COMPUTE, "POST", "/servers/*/metadata", metadata_write, ROUTE_VARIANT(META_MERGE),
     RULE_MEMBER},
    {SVC_COMPUTE, "PUT", "/servers/*/metadata", metadata_write, ROUTE_VARIANT(META_REPLACE),
     RULE_MEMBER},
    {SVC_COMPUTE, "GET", "/servers/*/metadata/*", metadata_show, 0, RULE_READER},
    {SVC_COMPUTE, "PUT", "/servers/*/metadata/*", metadata_put_item, 0, RULE_MEMBER},
    {SVC_COMPUTE, "DELETE", "/servers/*/metadata/*", metadata_delete_item, 0, RULE_MEMBER},
    {SVC_COMPUTE, "GET", "/servers/*/os-instance-actions", actions_list, 0, RULE_READER},
    {SVC_COMPUTE, "GET", "/servers/*/os-instance-actions/*", action_show, 0, RULE_READER},
    {SVC_COMPUTE, "GET", "/limits", limits_show, 0, RULE_ANY},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

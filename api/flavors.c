/* SPDX-License-Identifier: Apache-2.0 */
/* /flavors: list, detail, show, create, delete, os-extra_specs. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLAVOR_COLS "id, name, ram, vcpus, disk, ephemeral, swap, rxtx_factor, is_public, disabled"

static json_t *flavor_json(struct kova_req *r, sqlite3_stmt *st, bool detail)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    json_t *o =
        json_pack("{s:s, s:s, s:o}", "id", id, "name", (const char *)sqlite3_column_text(st, 1),
                  "links", link_list(r, "flavors", id));
    if (!detail || !o)
        return o;
    int swap = sqlite3_column_int(st, 6);
    json_object_set_new(o, "ram", json_integer(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "vcpus", json_integer(sqlite3_column_int64(st, 3)));
    json_object_set_new(o, "disk", json_integer(sqlite3_column_int64(st, 4)));
    json_object_set_new(o, "OS-FLV-EXT-DATA:ephemeral", json_integer(sqlite3_column_int64(st, 5)));
    json_object_set_new(o, "swap", swap ? json_integer(swap) : json_string(""));
    json_object_set_new(o, "rxtx_factor", json_real(sqlite3_column_double(st, 7)));
    json_object_set_new(o, "os-flavor-access:is_public", json_boolean(sqlite3_column_int(st, 8)));
    json_object_set_new(o, "OS-FLV-DISABLED:disabled", json_boolean(sqlite3_column_int(st, 9)));
    return o;
}

/* Parses a boolean query value as Nova's strutils does; -1 for "None"/"all" (admin: no filter).
 */
static int parse_is_public(const char *v, int *out)
{
    static const char *const t[] = {"1", "t", "true", "on", "y", "yes"};
    static const char *const f[] = {"0", "f", "false", "off", "n", "no"};
    for (size_t i = 0; i < 6; i++) {
        if (strcasecmp(v, t[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    if (strcasecmp(v, "none") == 0 || strcasecmp(v, "all") == 0) {
        *out = -1;
        return 0;
    }
    return -EINVAL;
}

static void list_common(struct kova_req *r, bool detail)
{
    static const char *const known_sort[] = {"id",           "flavorid", "name",        "memory_mb",
                                             "ram",          "vcpus",    "root_gb",     "disk",
                                             "ephemeral_gb", "swap",     "rxtx_factor", NULL};
    static const char *const sort_col[] = {"id",        "id",    "name",       "ram",
                                           "ram",       "vcpus", "disk",       "disk",
                                           "ephemeral", "swap",  "rxtx_factor"};
    int limit;
    if (!req_limit(r, &limit))
        return;
    int is_public = 1;
    const char *v = req_query(r, "is_public");
    if (v && parse_is_public(v, &is_public) < 0) {
        reply_fault(r, 400, "Invalid is_public filter [%.60s]", v);
        return;
    }
    if (is_public == -1 && !r->auth.is_admin)
        is_public = 1;
    if (!r->auth.is_admin && !v)
        is_public = 1;
    long long min_ram = 0, min_disk = 0;
    if ((v = req_query(r, "minRam")) && (!kova_parse_int(v, &min_ram) || min_ram < 0)) {
        reply_fault(r, 400, "Invalid minRam filter [%.60s]", v);
        return;
    }
    if ((v = req_query(r, "minDisk")) && (!kova_parse_int(v, &min_disk) || min_disk < 0)) {
        reply_fault(r, 400, "Invalid minDisk filter [%.60s]", v);
        return;
    }
    const char *col = "id";
    if ((v = req_query(r, "sort_key"))) {
        col = NULL;
        for (int i = 0; known_sort[i]; i++)
            if (strcmp(known_sort[i], v) == 0)
                col = sort_col[i];
        if (!col) {
            reply_fault(r, 400, "Invalid sort_key [%.60s]", v);
            return;
        }
    }
    bool desc = false;
    if ((v = req_query(r, "sort_dir"))) {
        if (strcmp(v, "desc") == 0)
            desc = true;
        else if (strcmp(v, "asc") != 0) {
            reply_fault(r, 400, "Invalid sort_dir [%.60s]", v);
            return;
        }
    }
    const char *marker = req_query(r, "marker");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT " FLAVOR_COLS " FROM flavors WHERE (?1 < 0 OR is_public = ?1) AND ram >= ?2"
             " AND disk >= ?3 ORDER BY %s %s, id %s",
             col, desc ? "DESC" : "ASC", desc ? "DESC" : "ASC");
    sqlite3_stmt *st = kova_db_prepare(r->db, sql);
    if (!st) {
        reply_db_error(r, -EIO);
        return;
    }
    sqlite3_bind_int(st, 1, is_public);
    sqlite3_bind_int64(st, 2, min_ram);
    sqlite3_bind_int64(st, 3, min_disk);
    json_t *arr = json_array();
    bool seen_marker = marker == NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!seen_marker) {
            if (strcmp((const char *)sqlite3_column_text(st, 0), marker) == 0)
                seen_marker = true;
            continue;
        }
        if ((int)json_array_size(arr) >= limit)
            break;
        json_array_append_new(arr, flavor_json(r, st, detail));
    }
    kova_db_done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(arr);
        reply_db_error(r, -EIO);
        return;
    }
    if (!seen_marker) {
        json_decref(arr);
        reply_fault(r, 400, "marker [%.100s] not found", marker);
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "flavors", arr));
}

static void flavor_list(struct kova_req *r)
{
    list_common(r, false);
}

static void flavor_detail(struct kova_req *r)
{
    list_common(r, true);
}

static sqlite3_stmt *find_flavor(struct kova_req *r, const char *id, bool *err)
{
    *err = false;
    sqlite3_stmt *st = kova_db_prepare(r->db, "SELECT " FLAVOR_COLS " FROM flavors WHERE id = ?");
    if (!st) {
        *err = true;
        return NULL;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return st;
    if (rc != SQLITE_DONE)
        *err = true;
    kova_db_done(st);
    return NULL;
}

static bool flavor_exists(struct kova_req *r, const char *id)
{
    bool err;
    sqlite3_stmt *st = find_flavor(r, id, &err);
    if (err) {
        reply_db_error(r, -EIO);
        return false;
    }
    if (!st) {
        reply_fault(r, 404, "Flavor %.100s could not be found.", id);
        return false;
    }
    kova_db_done(st);
    return true;
}

static void flavor_show(struct kova_req *r)
{
    bool err;
    sqlite3_stmt *st = find_flavor(r, r->arg[0], &err);
    if (err) {
        reply_db_error(r, -EIO);
        return;
    }
    if (!st) {
        reply_fault(r, 404, "Flavor %.100s could not be found.", r->arg[0]);
        return;
    }
    json_t *f = flavor_json(r, st, true);
    kova_db_done(st);
    reply_json(r, 200, json_pack("{s:o}", "flavor", f));
}

static bool valid_flavor_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ' '))
            return false;
    }
    return s[0] != ' ' && s[n - 1] != ' ';
}

static void flavor_create(struct kova_req *r)
{
    static const char *const allowed[] = {
        "name",        "id",          "ram",
        "vcpus",       "disk",        "OS-FLV-EXT-DATA:ephemeral",
        "swap",        "rxtx_factor", "os-flavor-access:is_public",
        "description", NULL};
    if (!require_admin(r))
        return;
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *f = req_json_root(r, body, "flavor");
    if (!f || !check_keys(r, f, allowed, "'flavor'"))
        goto out;
    json_t *v = json_object_get(f, "name");
    if (!json_is_string(v) || !valid_name(json_string_value(v), 255)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute name: a string of 1-255 "
                    "printable characters is required.");
        goto out;
    }
    const char *name = json_string_value(v);
    char id[256];
    v = json_object_get(f, "id");
    if (!v || json_is_null(v)) {
        char u[37];
        kova_uuid(u);
        snprintf(id, sizeof(id), "%s", u);
    } else if (json_is_string(v) && valid_flavor_id(json_string_value(v))) {
        snprintf(id, sizeof(id), "%s", json_string_value(v));
    } else if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(v));
    } else {
        reply_fault(r, 400,
                    "Invalid input for field/attribute id: up to 255 characters of "
                    "[a-zA-Z0-9_.- ] are allowed.");
        goto out;
    }
    long long ram, vcpus, disk, eph = 0, swap = 0;
    if (!json_as_int(json_object_get(f, "ram"), 1, 0x7fffffff, &ram)) {
        reply_fault(r, 400, "Invalid input for field/attribute ram: an integer >= 1 is required.");
        goto out;
    }
    if (!json_as_int(json_object_get(f, "vcpus"), 1, 0x7fffffff, &vcpus)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute vcpus: an integer >= 1 is required.");
        goto out;
    }
    if (!json_as_int(json_object_get(f, "disk"), 0, 0x7fffffff, &disk)) {
        reply_fault(r, 400, "Invalid input for field/attribute disk: an integer >= 0 is required.");
        goto out;
    }
    if ((v = json_object_get(f, "OS-FLV-EXT-DATA:ephemeral")) &&
        !json_as_int(v, 0, 0x7fffffff, &eph)) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute OS-FLV-EXT-DATA:ephemeral: an "
                    "integer >= 0 is required.");
        goto out;
    }
    if ((v = json_object_get(f, "swap")) && !(json_is_string(v) && json_string_length(v) == 0) &&
        !json_as_int(v, 0, 0x7fffffff, &swap)) {
        reply_fault(r, 400, "Invalid input for field/attribute swap: an integer >= 0 is required.");
        goto out;
    }
    double rxtx = 1.0;
    if ((v = json_object_get(f, "rxtx_factor"))) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 3.4e38) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute rxtx_factor: a number > 0 is "
                        "required.");
            goto out;
        }
        rxtx = json_number_value(v);
    }
    int is_public = 1;
    if ((v = json_object_get(f, "os-flavor-access:is_public"))) {
        if (!json_is_boolean(v)) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute os-flavor-access:is_public: "
                        "a boolean is required.");
            goto out;
        }
        is_public = json_is_true(v);
    }
    if ((v = json_object_get(f, "description"))) {
        reply_fault(r, 400,
                    "Invalid input for field/attribute description: additional "
                    "properties are not allowed in microversion 2.%d",
                    r->mv);
        goto out;
    }
    char now[32];
    kova_time_iso(now, true);
    int e = kova_db_begin(r->db);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    sqlite3_stmt *st = kova_db_prepare(
        r->db, "SELECT 1 FROM flavors WHERE id = ?1 UNION ALL SELECT 2 FROM flavors WHERE "
               "name = ?2");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int which = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    kova_db_done(st);
    if (which == 1) {
        reply_fault(r, 409, "Flavor with ID %s already exists.", id);
        goto out;
    }
    if (which == 2) {
        reply_fault(r, 409, "Flavor with name %.255s already exists.", name);
        goto out;
    }
    st = kova_db_prepare(r->db, "INSERT INTO flavors (id, name, ram, vcpus, disk, ephemeral, "
                                "swap, rxtx_factor, is_public, created_at) VALUES (?,?,?,?,?,?,?,"
                                "?,?,?)");
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ram);
    sqlite3_bind_int64(st, 4, vcpus);
    sqlite3_bind_int64(st, 5, disk);
    sqlite3_bind_int64(st, 6, eph);
    sqlite3_bind_int64(st, 7, swap);
    sqlite3_bind_double(st, 8, rxtx);
    sqlite3_bind_int(st, 9, is_public);
    sqlite3_bind_text(st, 10, now, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    kova_db_done(st);
    if (rc != SQLITE_DONE || (e = kova_db_commit(r->db)) < 0) {
        reply_db_error(r, kova_db_errno(rc));
        goto out;
    }
    bool err;
    st = find_flavor(r, id, &err);
    if (!st) {
        reply_db_error(r, -EIO);
        goto out;
    }
    json_t *fl = flavor_json(r, st, true);
    kova_db_done(st);
    reply_json(r, 200, json_pack("{s:o}", "flavor", fl));
out:
    json_decref(body);
}

static void flavor_delete(struct kova_req *r)
{
    if (!require_admin(r))
        return;
    sqlite3_stmt *st = kova_db_prepare(r->db, "DELETE FROM flavors WHERE id = ?");
    if (!st) {
        reply_db_error(r, -EIO);
        return;
    }
    sqlite3_bind_text(st, 1, r->arg[0], -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int n = sqlite3_changes(r->db);
    kova_db_done(st);
    if (rc != SQLITE_DONE)
        reply_db_error(r, kova_db_errno(rc));
    else if (n == 0)
        reply_fault(r, 404, "Flavor %.100s could not be found.", r->arg[0]);
    else
        reply_empty(r, 202);
}

/* ---- extra specs ---- */

static bool valid_spec_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 255)
        return false;
    for (const char *p = k; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == ':' || c == '.' || c == ' ' || c == '/'))
            return false;
    }
    return true;
}

/* Extra spec values may be strings, numbers or booleans (stored as strings). */
static bool spec_value(json_t *v, char *out, size_t len)
{
    if (json_is_string(v)) {
        if (json_string_length(v) > 255 || strlen(json_string_value(v)) != json_string_length(v))
            return false;
        snprintf(out, len, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(out, len, "%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, len, "%s", json_is_true(v) ? "True" : "False");
    } else {
        return false;
    }
    return true;
}

static json_t *specs_of(struct kova_req *r, const char *id)
{
    sqlite3_stmt *st =
        kova_db_prepare(r->db, "SELECT key, value FROM flavor_extra_specs WHERE flavor_id = ? "
                               "ORDER BY key");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    json_t *o = json_object();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(st, 0),
                            json_string((const char *)sqlite3_column_text(st, 1)));
    kova_db_done(st);
    return o;
}

static void specs_list(struct kova_req *r)
{
    if (!flavor_exists(r, r->arg[0]))
        return;
    json_t *o = specs_of(r, r->arg[0]);
    if (!o) {
        reply_db_error(r, -EIO);
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "extra_specs", o));
}

static int put_specs(struct kova_req *r, const char *id, json_t *specs)
{
    const char *k;
    json_t *v;
    int e = kova_db_begin(r->db);
    if (e < 0)
        return e;
    sqlite3_stmt *st = kova_db_prepare(
        r->db, "INSERT OR REPLACE INTO flavor_extra_specs (flavor_id, key, value) VALUES (?,?,?)");
    if (!st)
        return -EIO;
    json_object_foreach(specs, k, v)
    {
        char val[300];
        spec_value(v, val, sizeof(val));
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, val, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            kova_db_done(st);
            return -EIO;
        }
    }
    kova_db_done(st);
    return kova_db_commit(r->db);
}

static bool check_specs(struct kova_req *r, json_t *specs)
{
    const char *k;
    json_t *v;
    char val[300];
    json_object_foreach(specs, k, v)
    {
        if (!valid_spec_key(k)) {
            reply_fault(r, 400,
                        "Invalid extra_specs key '%.100s': 1-255 characters of "
                        "[a-zA-Z0-9-_:. /] are allowed.",
                        k);
            return false;
        }
        if (!spec_value(v, val, sizeof(val))) {
            reply_fault(r, 400,
                        "Invalid extra_specs value for '%.100s': a string of at most "
                        "255 characters, a number or a boolean is required.",
                        k);
            return false;
        }
    }
    return true;
}

static void specs_create(struct kova_req *r)
{
    static const char *const allowed[] = {"extra_specs", NULL};
    if (!require_admin(r) || !flavor_exists(r, r->arg[0]))
        return;
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *specs = req_json_root(r, body, "extra_specs");
    if (!specs || !check_keys(r, body, allowed, "body") || !check_specs(r, specs))
        goto out;
    int e = put_specs(r, r->arg[0], specs);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    json_t *o = specs_of(r, r->arg[0]);
    reply_json(r, 200, json_pack("{s:o}", "extra_specs", o ? o : json_object()));
out:
    json_decref(body);
}

static void spec_show(struct kova_req *r)
{
    if (!flavor_exists(r, r->arg[0]))
        return;
    sqlite3_stmt *st = kova_db_prepare(
        r->db, "SELECT value FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?");
    if (!st) {
        reply_db_error(r, -EIO);
        return;
    }
    sqlite3_bind_text(st, 1, r->arg[0], -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->arg[1], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        reply_json(r, 200, json_pack("{s:s}", r->arg[1], (const char *)sqlite3_column_text(st, 0)));
    else
        reply_fault(r, 404, "Flavor %.100s has no extra specs with key %.100s.", r->arg[0],
                    r->arg[1]);
    kova_db_done(st);
}

static void spec_update(struct kova_req *r)
{
    if (!require_admin(r) || !flavor_exists(r, r->arg[0]))
        return;
    json_t *body = req_json(r);
    if (!body)
        return;
    if (json_object_size(body) != 1 || !json_object_get(body, r->arg[1])) {
        reply_fault(r, 400, "Request body and URI mismatch");
        goto out;
    }
    if (!check_specs(r, body))
        goto out;
    int e = put_specs(r, r->arg[0], body);
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    reply_json(r, 200, json_incref(body));
out:
    json_decref(body);
}

static void spec_delete(struct kova_req *r)
{
    if (!require_admin(r) || !flavor_exists(r, r->arg[0]))
        return;
    sqlite3_stmt *st =
        kova_db_prepare(r->db, "DELETE FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?");
    if (!st) {
        reply_db_error(r, -EIO);
        return;
    }
    sqlite3_bind_text(st, 1, r->arg[0], -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->arg[1], -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int n = sqlite3_changes(r->db);
    kova_db_done(st);
    if (rc != SQLITE_DONE)
        reply_db_error(r, -EIO);
    else if (n == 0)
        reply_fault(r, 404, "Flavor %.100s has no extra specs with key %.100s.", r->arg[0],
                    r->arg[1]);
    else
        reply_empty(r, 200);
}

const struct kova_route kova_flavor_routes[] = {
    {SVC_COMPUTE, "GET", "/flavors", flavor_list, 0},
    {SVC_COMPUTE, "GET", "/flavors/detail", flavor_detail, 0},
    {SVC_COMPUTE, "POST", "/flavors", flavor_create, 0},
    {SVC_COMPUTE, "GET", "/flavors/*", flavor_show, 0},
    {SVC_COMPUTE, "DELETE", "/flavors/*", flavor_delete, 0},
    {SVC_COMPUTE, "GET", "/flavors/*/os-extra_specs", specs_list, 0},
    {SVC_COMPUTE, "POST", "/flavors/*/os-extra_specs", specs_create, 0},
    {SVC_COMPUTE, "GET", "/flavors/*/os-extra_specs/*", spec_show, 0},
    {SVC_COMPUTE, "PUT", "/flavors/*/os-extra_specs/*", spec_update, 0},
    {SVC_COMPUTE, "DELETE", "/flavors/*/os-extra_specs/*", spec_delete, 0},
    {0, NULL, NULL, NULL, 0},
};

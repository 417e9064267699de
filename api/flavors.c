/* SPDX-License-Identifier: Apache-2.0 */
/* /flavors: list, detail, show, create, delete, os-extra_specs. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *flavor_json(struct kova_req *r, const struct kova_db_flavor *f, bool detail)
{
    json_t *o = json_pack("{s:s, s:s, s:o}", "id", f->id, "name", f->name, "links",
                          link_list(r, "flavors", f->id));
    if (!detail || !o)
        return o;
    json_object_set_new(o, "ram", json_integer(f->ram));
    json_object_set_new(o, "vcpus", json_integer(f->vcpus));
    json_object_set_new(o, "disk", json_integer(f->disk));
    json_object_set_new(o, "OS-FLV-EXT-DATA:ephemeral", json_integer(f->ephemeral));
    json_object_set_new(o, "swap", f->swap ? json_integer(f->swap) : json_string(""));
    json_object_set_new(o, "rxtx_factor", json_real(f->rxtx_factor));
    json_object_set_new(o, "os-flavor-access:is_public", json_boolean(f->is_public));
    json_object_set_new(o, "OS-FLV-DISABLED:disabled", json_boolean(f->disabled));
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

static void flavor_list(struct kova_req *r)
{
    bool detail = route_variant(r) == LIST_DETAIL;
    static const char *const known_sort[] = {"id",           "flavorid", "name",        "memory_mb",
                                             "ram",          "vcpus",    "root_gb",     "disk",
                                             "ephemeral_gb", "swap",     "rxtx_factor", NULL};
    static const enum kova_db_flavor_sort sort_by[] = {
        KOVA_DB_FLAVOR_BY_ID,   KOVA_DB_FLAVOR_BY_ID,         KOVA_DB_FLAVOR_BY_NAME,
        KOVA_DB_FLAVOR_BY_RAM,  KOVA_DB_FLAVOR_BY_RAM,        KOVA_DB_FLAVOR_BY_VCPUS,
        KOVA_DB_FLAVOR_BY_DISK, KOVA_DB_FLAVOR_BY_DISK,       KOVA_DB_FLAVOR_BY_EPHEMERAL,
        KOVA_DB_FLAVOR_BY_SWAP, KOVA_DB_FLAVOR_BY_RXTX_FACTOR};
    int limit;
    if (!req_limit(r, &limit))
        return;
    /* as Nova: only an admin's is_public is read; anyone else sees the public flavors */
    int is_public = 1;
    const char *v = r->auth.is_admin ? req_query(r, "is_public") : NULL;
    if (v && parse_is_public(v, &is_public) < 0) {
        reply_fault(r, 400, "Invalid is_public filter [%.60s]", v);
        return;
    }
    long long min_ram = 0, min_disk = 0;
    if ((v = req_query(r, "minRam")) && (!kova_parse_int(v, &min_ram) || min_ram < 0)) {
        reply_fault(r, 400, "Invalid minRam filter [%.60s]", v);
        return;
    }
    if ((v = req_query(r, "minDisk")) && (!kova_parse_int(v, &min_disk) || min_disk < 0)) {
        reply_fault(r, 400, "Invalid minDisk filter [%.60s]", v);
        return;
    }
    enum kova_db_flavor_sort sort = KOVA_DB_FLAVOR_BY_ID;
    if ((v = req_query(r, "sort_key"))) {
        int k = -1;
        for (int i = 0; known_sort[i]; i++)
            if (strcmp(known_sort[i], v) == 0)
                k = i;
        if (k < 0) {
            reply_fault(r, 400, "Invalid sort_key [%.60s]", v);
            return;
        }
        sort = sort_by[k];
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
    struct kova_db_flavor_filter flt = {.is_public = is_public,
                                        .min_ram = min_ram,
                                        .min_disk = min_disk,
                                        .sort = sort,
                                        .desc = desc,
                                        .marker = marker,
                                        .limit = limit};
    struct kova_db_flavor *fl;
    size_t n;
    int e = kova_db_flavor_list(r->db, &flt, &fl, &n);
    if (reply_list_failed(r, e, "marker [%.100s] not found", marker))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, flavor_json(r, &fl[i], detail));
    free(fl);
    reply_json(r, 200, json_pack("{s:o}", "flavors", arr));
}

/* Loads a flavor the caller may see (a private one: admins only, as kova keeps no flavor
 * access lists); replies 404 (or 500) and returns false when there is none. */
static bool find_flavor(struct kova_req *r, const char *id, struct kova_db_flavor *f)
{
    int e = kova_db_flavor_get(r->db, id, f);
    if (e == 0 && !f->is_public && !r->auth.is_admin)
        e = -ENOENT;
    if (e == -ENOENT)
        reply_fault(r, 404, "Flavor %.100s could not be found.", id);
    else if (e < 0)
        reply_db_error(r, -EIO);
    return e == 0;
}

static bool flavor_exists(struct kova_req *r, const char *id)
{
    struct kova_db_flavor f;
    return find_flavor(r, id, &f);
}

static void flavor_show(struct kova_req *r)
{
    struct kova_db_flavor f;
    if (find_flavor(r, r->arg[0], &f))
        reply_json(r, 200, json_pack("{s:o}", "flavor", flavor_json(r, &f, true)));
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
    json_t *body = req_json(r);
    if (!body)
        return;
    static const char *const allowed_top[] = {"flavor", NULL};
    json_t *f = req_json_root(r, body, "flavor");
    if (!f || !check_keys(r, body, allowed_top, "body") || !check_keys(r, f, allowed, "'flavor'"))
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
    struct kova_db_flavor fl = {.ram = ram,
                                .vcpus = vcpus,
                                .disk = disk,
                                .ephemeral = eph,
                                .swap = swap,
                                .rxtx_factor = rxtx,
                                .is_public = is_public};
    snprintf(fl.id, sizeof(fl.id), "%s", id);
    snprintf(fl.name, sizeof(fl.name), "%s", name);
    int e = kova_db_flavor_create(r->db, &fl);
    if (e == -EEXIST) {
        reply_fault(r, 409, "Flavor with ID %s already exists.", id);
        goto out;
    }
    if (e == -ENOTUNIQ) {
        reply_fault(r, 409, "Flavor with name %.255s already exists.", name);
        goto out;
    }
    if (e < 0) {
        reply_db_error(r, e);
        goto out;
    }
    if ((e = kova_db_flavor_get(r->db, id, &fl)) < 0) {
        reply_db_error(r, -EIO);
        goto out;
    }
    reply_json(r, 200, json_pack("{s:o}", "flavor", flavor_json(r, &fl, true)));
out:
    json_decref(body);
}

static void flavor_delete(struct kova_req *r)
{
    int e = kova_db_flavor_delete(r->db, r->arg[0]);
    if (e == -ENOENT)
        reply_fault(r, 404, "Flavor %.100s could not be found.", r->arg[0]);
    else if (e < 0)
        reply_db_error(r, e);
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
    struct kova_db_spec *v;
    size_t n;
    if (kova_db_flavor_specs(r->db, id, &v, &n) < 0)
        return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, v[i].key, json_string(v[i].value));
    free(v);
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

/* Stores the specs (checked by check_specs). false after replying 404 (no such flavor) or 500. */
static bool put_specs(struct kova_req *r, const char *id, json_t *specs)
{
    size_t n = json_object_size(specs), i = 0;
    struct kova_db_spec *v = calloc(n ? n : 1, sizeof(*v));
    int e = -ENOMEM;
    if (v) {
        const char *k;
        json_t *val;
        json_object_foreach(specs, k, val)
        {
            snprintf(v[i].key, sizeof(v[i].key), "%s", k);
            spec_value(val, v[i].value, sizeof(v[i].value));
            i++;
        }
        e = kova_db_flavor_specs_set(r->db, id, v, i);
        free(v);
    }
    if (e == -ENOENT)
        reply_fault(r, 404, "Flavor %.100s could not be found.", id);
    else if (e < 0)
        reply_db_error(r, e);
    return e == 0;
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
    if (!flavor_exists(r, r->arg[0]))
        return;
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *specs = req_json_root(r, body, "extra_specs");
    if (!specs || !check_keys(r, body, allowed, "body") || !check_specs(r, specs))
        goto out;
    if (!put_specs(r, r->arg[0], specs))
        goto out;
    json_t *o = specs_of(r, r->arg[0]);
    reply_json(r, 200, json_pack("{s:o}", "extra_specs", o ? o : json_object()));
out:
    json_decref(body);
}

static void spec_show(struct kova_req *r)
{
    if (!flavor_exists(r, r->arg[0]))
        return;
    struct kova_db_spec sp;
    int e = kova_db_flavor_spec_get(r->db, r->arg[0], r->arg[1], &sp);
    if (e == 0)
        reply_json(r, 200, json_pack("{s:s}", r->arg[1], sp.value));
    else if (e == -ENOENT)
        reply_fault(r, 404, "Flavor %.100s has no extra specs with key %.100s.", r->arg[0],
                    r->arg[1]);
    else
        reply_db_error(r, e);
}

static void spec_update(struct kova_req *r)
{
    if (!flavor_exists(r, r->arg[0]))
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
    if (!put_specs(r, r->arg[0], body))
        goto out;
    reply_json(r, 200, json_incref(body));
out:
    json_decref(body);
}

static void spec_delete(struct kova_req *r)
{
    if (!flavor_exists(r, r->arg[0]))
        return;
    int e = kova_db_flavor_spec_delete(r->db, r->arg[0], r->arg[1]);
    if (e < 0 && e != -ENOENT)
        reply_db_error(r, -EIO);
    else if (e == -ENOENT)
        reply_fault(r, 404, "Flavor %.100s has no extra specs with key %.100s.", r->arg[0],
                    r->arg[1]);
    else
        reply_empty(r, 200);
}

const struct kova_route kova_flavor_routes[] = {
    {SVC_COMPUTE, "GET", "/flavors", flavor_list, ROUTE_VARIANT(LIST_BRIEF), RULE_ANY},
    {SVC_COMPUTE, "GET", "/flavors/detail", flavor_list, ROUTE_VARIANT(LIST_DETAIL), RULE_ANY},
    {SVC_COMPUTE, "POST", "/flavors", flavor_create, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/flavors/*", flavor_show, 0, RULE_ANY},
    {SVC_COMPUTE, "DELETE", "/flavors/*", flavor_delete, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/flavors/*/os-extra_specs", specs_list, 0, RULE_READER},
    {SVC_COMPUTE, "POST", "/flavors/*/os-extra_specs", specs_create, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/flavors/*/os-extra_specs/*", spec_show, 0, RULE_READER},
    {SVC_COMPUTE, "PUT", "/flavors/*/os-extra_specs/*", spec_update, 0, RULE_ADMIN},
    {SVC_COMPUTE, "DELETE", "/flavors/*/os-extra_specs/*", spec_delete, 0, RULE_ADMIN},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Images: a Glance v2 subset on the image listener (create, upload with PUT .../file, download,
 * show, list, update via JSON patch, delete, web-download import with libcurl) and Nova's image
 * proxy /v2.1/images on the compute listener. Image data lives in <state>/images/<id>.
 * Images carry Nova's kernel_id, ramdisk_id and os_command_line properties.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const disk_formats[] = {"ami", "ari",   "aki", "vhd", "vhdx",  "vmdk",
                                           "raw", "qcow2", "vdi", "iso", "ploop", NULL};
static const char *const container_formats[] = {"ami", "ari",    "aki",        "bare", "ovf",
                                                "ova", "docker", "compressed", NULL};
static const char *const visibilities[] = {"public", "private", "shared", "community", NULL};
/* attributes a client may not set */
static const char *const readonly_attrs[] = {
    "status",        "size",       "virtual_size", "checksum",  "os_hash_algo",
    "os_hash_value", "created_at", "updated_at",   "self",      "file",
    "schema",        "owner",      "direct_url",   "locations", "deleted",
    "deleted_at",    NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

/* A nullable text member as JSON: the string, or null when has is false. */
static json_t *opt_str(bool has, const char *s)
{
    return json_str_or_null(has ? s : NULL);
}

static json_t *glance_json(const struct kova_db_image *im)
{
    const char *id = im->id;
    char self[80], file[90];
    snprintf(self, sizeof(self), "/v2/images/%s", id);
    snprintf(file, sizeof(file), "/v2/images/%s/file", id);
    json_t *props = json_loads(im->properties, 0, NULL);
    json_t *tags = json_loads(im->tags, 0, NULL);
    json_t *o = json_pack(
        "{s:s, s:o, s:s, s:s, s:o, s:b, s:o, s:o, s:o, s:o, s:n, s:I, s:I, s:o, s:o, s:s, s:s, "
        "s:o, s:s, s:s, s:s, s:b}",
        "id", id, "name", opt_str(im->has_name, im->name), "status", im->status, "visibility",
        im->visibility, "owner", opt_str(im->has_owner, im->owner), "protected",
        (int)im->is_protected, "checksum", opt_str(im->has_checksum, im->checksum), "os_hash_algo",
        opt_str(im->has_os_hash_algo, im->os_hash_algo), "os_hash_value",
        opt_str(im->has_os_hash_value, im->os_hash_value), "size",
        im->has_size ? json_integer(im->size) : json_null(), "virtual_size", "min_disk",
        (json_int_t)im->min_disk, "min_ram", (json_int_t)im->min_ram, "disk_format",
        opt_str(im->has_disk_format, im->disk_format), "container_format",
        opt_str(im->has_container_format, im->container_format), "created_at", im->created_at,
        "updated_at", im->updated_at, "tags",
        json_is_array(tags) ? json_incref(tags) : json_array(), "self", self, "file", file,
        "schema", "/v2/schemas/image", "os_hidden", 0);
    if (o && json_is_object(props)) {
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v)
        {
            if (!json_object_get(o, k))
                json_object_set(o, k, v);
        }
    }
    json_decref(props);
    json_decref(tags);
    return o;
}

/* Loads an image visible to the caller into *im (kova_db_image_free it); replies 404 (500 on a
 * database error) and returns false otherwise. */
static bool load_image(struct kova_req *r, const char *id, struct kova_db_image *im)
{
    memset(im, 0, sizeof(*im));
    if (!kova_is_uuid(id)) {
        reply_fault(r, 404, "No image found with ID %.100s", id);
        return false;
    }
    int e = kova_db_image_get_visible(r->db, id, r->auth.project_id, r->auth.is_admin, im);
    if (e == -ENOENT)
        reply_fault(r, 404, "No image found with ID %.100s", id);
    else if (e < 0)
        reply_db_error(r, -EIO);
    return e == 0;
}

static bool may_modify(struct kova_req *r, const struct kova_db_image *im)
{
    if (r->auth.is_admin || (im->has_owner && strcmp(im->owner, r->auth.project_id) == 0))
        return true;
    reply_fault(r, 403, "You are not permitted to modify image %s.", im->id);
    return false;
}

static void image_path(struct kova_req *r, const char *id, const char *suffix, char *out,
                       size_t len)
{
    snprintf(out, len, "%s/%s%s", r->api->images_dir, id, suffix);
}

/* Validates one settable attribute (create or patch). Returns false after replying. */
static bool check_attr(struct kova_req *r, const char *k, json_t *v)
{
    if (in_list(readonly_attrs, k)) {
        reply_fault(r, 403, "Attribute '%.100s' is read-only.", k);
        return false;
    }
    if (!strcmp(k, "id")) {
        if (!json_is_string(v) || !kova_is_uuid(json_string_value(v))) {
            reply_fault(r, 400, "Invalid id: a UUID is required.");
            return false;
        }
    } else if (!strcmp(k, "name")) {
        if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 255 ||
                                 strlen(json_string_value(v)) != json_string_length(v))) {
            reply_fault(r, 400, "Invalid name: a string of at most 255 characters is required.");
            return false;
        }
    } else if (!strcmp(k, "visibility")) {
        if (!json_is_string(v) || !in_list(visibilities, json_string_value(v))) {
            reply_fault(r, 400, "Invalid visibility value: %.100s",
                        json_is_string(v) ? json_string_value(v) : "(not a string)");
            return false;
        }
        if (!strcmp(json_string_value(v), "public") && !r->auth.is_admin) {
            reply_fault(r, 403, "You are not authorized to publicize images.");
            return false;
        }
    } else if (!strcmp(k, "disk_format")) {
        if (!json_is_null(v) &&
            (!json_is_string(v) || !in_list(disk_formats, json_string_value(v)))) {
            reply_fault(r, 400, "Invalid disk_format.");
            return false;
        }
    } else if (!strcmp(k, "container_format")) {
        if (!json_is_null(v) &&
            (!json_is_string(v) || !in_list(container_formats, json_string_value(v)))) {
            reply_fault(r, 400, "Invalid container_format.");
            return false;
        }
    } else if (!strcmp(k, "min_disk") || !strcmp(k, "min_ram")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 0x7fffffff) {
            reply_fault(r, 400, "Invalid %s: an integer >= 0 is required.", k);
            return false;
        }
    } else if (!strcmp(k, "protected") || !strcmp(k, "os_hidden")) {
        if (!json_is_boolean(v)) {
            reply_fault(r, 400, "Invalid %s: a boolean is required.", k);
            return false;
        }
    } else if (!strcmp(k, "tags")) {
        size_t i;
        json_t *t;
        if (!json_is_array(v) || json_array_size(v) > 128) {
            reply_fault(r, 400, "Invalid tags: an array of at most 128 strings is required.");
            return false;
        }
        json_array_foreach(v, i, t)
        {
            if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 255) {
                reply_fault(r, 400, "Invalid tag.");
                return false;
            }
        }
    } else {
        /* an extra property: a string (kernel_id/ramdisk_id must be image UUIDs) */
        if (strlen(k) == 0 || strlen(k) > 255) {
            reply_fault(r, 400, "Invalid property name.");
            return false;
        }
        if (json_is_null(v) && (!strcmp(k, "kernel_id") || !strcmp(k, "ramdisk_id")))
            return true;
        if (!json_is_string(v) || json_string_length(v) > 65535 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            reply_fault(r, 400, "Invalid value for property '%.100s': a string is required.", k);
            return false;
        }
        if ((!strcmp(k, "kernel_id") || !strcmp(k, "ramdisk_id")) &&
            !kova_is_uuid(json_string_value(v))) {
            reply_fault(r, 400, "Invalid %s: the id of another image is required.", k);
            return false;
        }
    }
    return true;
}

/* Glance's image_property_quota (its default; /limits says maxImageMeta 128): replies 413 and
 * returns false when props holds more extra properties. */
#define IMAGE_PROPERTY_QUOTA 128
static bool props_within_quota(struct kova_req *r, json_t *props)
{
    if (json_object_size(props) <= IMAGE_PROPERTY_QUOTA)
        return true;
    reply_fault(r, 413, "Attempted: %zu, Maximum: %d", json_object_size(props),
                IMAGE_PROPERTY_QUOTA);
    return false;
}

static bool is_core_attr(const char *k)
{
    static const char *const core[] = {
        "id",        "name", "visibility", "disk_format", "container_format", "min_disk", "min_ram",
        "protected", "tags", "os_hidden",  NULL};
    return in_list(core, k);
}

static void reply_image(struct kova_req *r, const char *id, int status)
{
    struct kova_db_image im;
    if (!load_image(r, id, &im))
        return;
    json_t *o = glance_json(&im);
    kova_db_image_free(&im);
    reply_json(r, status, o);
}

/* Copies a JSON string into a fixed-size member; false (and "") when v is not a string. */
static bool copy_str(char *dst, size_t len, json_t *v)
{
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
    return json_is_string(v);
}

static void glance_create(struct kova_req *r)
{
    json_t *body = req_json(r);
    if (!body)
        return;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (!check_attr(r, k, v))
            goto out;
    }
    struct kova_db_image im = {.has_owner = true};
    v = json_object_get(body, "id");
    if (v)
        snprintf(im.id, sizeof(im.id), "%s", json_string_value(v));
    else
        kova_uuid(im.id);
    json_t *props = json_object();
    json_object_foreach(body, k, v)
    {
        if (!is_core_attr(k) && !json_is_null(v))
            json_object_set(props, k, v);
    }
    if (!props_within_quota(r, props)) {
        json_decref(props);
        goto out;
    }
    char *props_s = json_dumps(props, JSON_COMPACT);
    json_decref(props);
    json_t *tags = json_object_get(body, "tags");
    char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : strdup("[]");
    if (!props_s || !tags_s) {
        free(props_s);
        free(tags_s);
        reply_db_error(r, -EIO);
        goto out;
    }
    json_t *vis = json_object_get(body, "visibility");
    im.has_name = copy_str(im.name, sizeof(im.name), json_object_get(body, "name"));
    snprintf(im.owner, sizeof(im.owner), "%s", r->auth.project_id);
    snprintf(im.visibility, sizeof(im.visibility), "%s", vis ? json_string_value(vis) : "shared");
    im.has_disk_format =
        copy_str(im.disk_format, sizeof(im.disk_format), json_object_get(body, "disk_format"));
    im.has_container_format = copy_str(im.container_format, sizeof(im.container_format),
                                       json_object_get(body, "container_format"));
    im.min_disk = json_integer_value(json_object_get(body, "min_disk"));
    im.min_ram = json_integer_value(json_object_get(body, "min_ram"));
    im.is_protected = json_is_true(json_object_get(body, "protected"));
    im.properties = props_s;
    im.tags = tags_s;
    int e = kova_db_image_create(r->db, &im);
    free(props_s);
    free(tags_s);
    if (e < 0) {
        if (e == -EEXIST)
            reply_fault(r, 409, "Image with identifier %s already exists!", im.id);
        else
            reply_db_error(r, e);
        goto out;
    }
    set_location(r, "%s/v2/images/%s", r->base_url, im.id);
    reply_image(r, im.id, 201);
out:
    json_decref(body);
}

static void glance_show(struct kova_req *r)
{
    reply_image(r, r->arg[0], 200);
}

static const char *const image_statuses[] = {
    "queued",         "saving",      "active",    "killed",    "deleted",
    "pending_delete", "deactivated", "uploading", "importing", NULL};

static void bad_sort_key(struct kova_req *r, const char *k)
{
    reply_fault(r, 400,
                "Invalid sort key: %.100s. It must be one of the following: name, status, "
                "container_format, disk_format, size, id, created_at, updated_at.",
                k);
}

/* One sort key and its dir ("asc", "desc", or NULL: desc) into sort[*n]; false after a 400. */
static bool add_sort(struct kova_req *r, struct kova_db_sort *sort, int *n, const char *key,
                     const char *dir)
{
    int k = kova_db_image_sort_key(key);
    if (k < 0) {
        bad_sort_key(r, key);
        return false;
    }
    if (dir && strcmp(dir, "asc") && strcmp(dir, "desc")) {
        reply_fault(r, 400, "Invalid sort direction: %.100s", dir);
        return false;
    }
    if (*n == KOVA_DB_SORT_MAX) {
        reply_fault(r, 400, "Too many sort keys (at most %d).", KOVA_DB_SORT_MAX);
        return false;
    }
    sort[*n].key = k;
    sort[(*n)++].desc = !dir || !strcmp(dir, "desc");
    return true;
}

/* Glance's order: sort=key[:dir],... or sort_key / sort_dir (each repeatable: one dir for every
 * key, or one per key); desc by default. false after a 400. */
static bool glance_order(struct kova_req *r, struct kova_db_sort *sort, int *nsort)
{
    const char *keys[KOVA_DB_SORT_MAX + 1], *dirs[KOVA_DB_SORT_MAX + 1];
    int nk = req_query_all(r, "sort_key", keys, KOVA_DB_SORT_MAX + 1);
    int nd = req_query_all(r, "sort_dir", dirs, KOVA_DB_SORT_MAX + 1);
    const char *spec = req_query(r, "sort");
    *nsort = 0;
    if (spec && (nk || nd)) {
        reply_fault(r, 400, "The 'sort' param cannot be used with 'sort_key' or 'sort_dir'.");
        return false;
    }
    if (spec) {
        char buf[512];
        if (strlen(spec) >= sizeof(buf)) {
            bad_sort_key(r, "(too long)");
            return false;
        }
        snprintf(buf, sizeof(buf), "%s", spec);
        char *save = NULL;
        for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            char *dir = strchr(item, ':');
            if (dir)
                *dir++ = 0;
            if (!add_sort(r, sort, nsort, item, dir))
                return false;
        }
        if (!*nsort) {
            bad_sort_key(r, spec);
            return false;
        }
        return true;
    }
    if (nk > KOVA_DB_SORT_MAX || nd > KOVA_DB_SORT_MAX) {
        reply_fault(r, 400, "Too many sort keys (at most %d).", KOVA_DB_SORT_MAX);
        return false;
    }
    if (nd > 1 && nd != nk) {
        reply_fault(r, 400, "Number of sort dirs does not match the number of sort keys");
        return false;
    }
    if (!nk && nd) /* a direction alone orders by creation */
        return add_sort(r, sort, nsort, "created_at", dirs[0]);
    for (int i = 0; i < nk; i++)
        if (!add_sort(r, sort, nsort, keys[i], nd ? dirs[nd == 1 ? 0 : i] : NULL))
            return false;
    return true;
}

/* A time filter "op:time" (op gt, gte, lt, lte, eq, neq) or "time" (eq) of the query argument
 * name into *c; absent: KOVA_DB_ANY. false after a 400. */
static bool time_filter(struct kova_req *r, const char *name, struct kova_db_time_cmp *c)
{
    static const struct {
        const char *prefix;
        enum kova_db_cmp op;
    } ops[] = {{"gte:", KOVA_DB_GTE}, {"gt:", KOVA_DB_GT},   {"lte:", KOVA_DB_LTE},
               {"lt:", KOVA_DB_LT},   {"neq:", KOVA_DB_NEQ}, {"eq:", KOVA_DB_EQ}};
    const char *v = req_query(r, name);
    c->op = KOVA_DB_ANY;
    if (!v)
        return true;
    enum kova_db_cmp op = KOVA_DB_EQ;
    const char *t = v;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!strncmp(v, ops[i].prefix, strlen(ops[i].prefix))) {
            op = ops[i].op;
            t = v + strlen(ops[i].prefix);
            break;
        }
    }
    time_t at;
    struct tm tm;
    if (kova_parse_time(t, &at) < 0 || !gmtime_r(&at, &tm) ||
        !strftime(c->at, sizeof(c->at), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        reply_fault(r, 400, "Invalid time format for %s.", name);
        return false;
    }
    c->op = op;
    return true;
}

/* size_min / size_max: a non-negative integer. false after a 400. */
static bool size_filter(struct kova_req *r, const char *name, bool *has, long long *v)
{
    const char *s = req_query(r, name);
    *has = false;
    if (!s)
        return true;
    if (!kova_parse_int(s, v) || *v < 0) {
        reply_fault(r, 400, "Invalid value for %s: it must be an integer >= 0.", name);
        return false;
    }
    *has = true;
    return true;
}

/* A list's marker must be an image the caller sees (Glance, Nova: 400 otherwise; paging from
 * another project's private image would tell that it exists). false after replying 400. */
static bool marker_visible(struct kova_req *r, const char *marker, const char *fmt)
    __attribute__((format(printf, 3, 0)));
static bool marker_visible(struct kova_req *r, const char *marker, const char *fmt)
{
    if (!marker)
        return true;
    struct kova_db_image im;
    int e = kova_is_uuid(marker) ? kova_db_image_get_visible(r->db, marker, r->auth.project_id,
                                                             r->auth.is_admin, &im)
                                 : -ENOENT;
    if (e == 0)
        kova_db_image_free(&im);
    return !reply_list_failed(r, e, fmt, marker);
}

static void glance_list(struct kova_req *r)
{
    int limit;
    if (!req_limit(r, &limit))
        return;
    if (limit > 1000)
        limit = 1000;
    struct kova_db_sort sort[KOVA_DB_SORT_MAX];
    struct kova_db_image_filter f = {.project_id = r->auth.project_id,
                                     .is_admin = r->auth.is_admin,
                                     .name = req_query(r, "name"),
                                     .status = req_query(r, "status"),
                                     .visibility = req_query(r, "visibility"),
                                     .owner = req_query(r, "owner"),
                                     .disk_format = req_query(r, "disk_format"),
                                     .container_format = req_query(r, "container_format"),
                                     .marker = req_query(r, "marker"),
                                     .limit = limit,
                                     .sort = sort};
    const char *vis = f.visibility, *prot = req_query(r, "protected");
    const char *member_status = req_query(r, "member_status");
    if (vis && strcmp(vis, "all") && !in_list(visibilities, vis)) {
        reply_fault(r, 400, "Invalid visibility value: %.100s", vis);
        return;
    }
    if (vis && !strcmp(vis, "all"))
        f.visibility = NULL;
    if (f.status && !in_list(image_statuses, f.status)) {
        reply_fault(r, 400, "Invalid status value: %.100s", f.status);
        return;
    }
    if (prot && strcmp(prot, "true") && strcmp(prot, "false")) {
        reply_fault(r, 400,
                    "Invalid value '%.100s' for 'protected' filter. Valid values are 'true' or "
                    "'false'.",
                    prot);
        return;
    }
    static const char *const member_statuses[] = {"accepted", "pending", "rejected", "all", NULL};
    if (member_status && !in_list(member_statuses, member_status)) {
        reply_fault(r, 400, "Invalid status: %.100s", member_status);
        return;
    }
    if (prot)
        f.protected_is = !strcmp(prot, "true") ? KOVA_DB_PROTECTED_YES : KOVA_DB_PROTECTED_NO;
    if (!size_filter(r, "size_min", &f.has_size_min, &f.size_min) ||
        !size_filter(r, "size_max", &f.has_size_max, &f.size_max) ||
        !time_filter(r, "created_at", &f.created) || !time_filter(r, "updated_at", &f.updated) ||
        !glance_order(r, sort, &f.nsort) ||
        !marker_visible(r, f.marker, "Invalid marker. Image %.100s could not be found."))
        return;
    struct kova_db_image *v;
    size_t n;
    int e = kova_db_image_list(r->db, &f, &v, &n);
    if (reply_list_failed(r, e, "Invalid marker. Image %.100s could not be found.", f.marker))
        return;
    json_t *arr = json_array();
    char last[37] = "";
    for (size_t i = 0; i < n; i++) {
        snprintf(last, sizeof(last), "%.36s", v[i].id);
        json_array_append_new(arr, glance_json(&v[i]));
    }
    kova_db_image_list_free(v, n);
    json_t *o = json_pack("{s:o, s:s, s:s}", "images", arr, "first", "/v2/images", "schema",
                          "/v2/schemas/images");
    if (last[0] && (int)json_array_size(arr) == limit) {
        /* the next page keeps the filters and the order */
        static const char *const paging[] = {"limit", "marker", NULL};
        struct sbuf next = {0};
        sb_put(&next, "/v2/images?");
        req_query_copy(r, paging, &next);
        sb_printf(&next, "marker=%s&limit=%d", last, limit);
        if (!next.oom)
            json_object_set_new(o, "next", json_string(next.p));
        free(next.p);
    }
    reply_json(r, 200, o);
}

static int delete_image(struct kova_req *r, const char *id)
{
    struct kova_db_image im;
    if (!load_image(r, id, &im))
        return -ENOENT;
    int e = -EPERM;
    if (!may_modify(r, &im))
        goto out;
    if (im.is_protected) {
        reply_fault(r, 403, "Image %s is protected and cannot be deleted.", id);
        goto out;
    }
    if (!strcmp(im.status, "saving") || !strcmp(im.status, "importing")) {
        reply_fault(r, 409, "Image %s is being uploaded and cannot be deleted now.", id);
        e = -EBUSY;
        goto out;
    }
    e = kova_db_image_delete(r->db, id);
    if (e < 0 && e != -ENOENT) { /* -ENOENT: deleted meanwhile, so is its data */
        reply_db_error(r, -EIO);
        e = -EIO;
        goto out;
    }
    char path[4200];
    image_path(r, id, "", path, sizeof(path));
    unlink(path);
    e = 0;
out:
    kova_db_image_free(&im);
    return e;
}

static void glance_delete(struct kova_req *r)
{
    if (delete_image(r, r->arg[0]) == 0)
        reply_empty(r, 204);
}

struct patch {
    struct kova_req *r;
    json_t *ops;
};

/* Applies the patch in the transaction kova_db_txn_conn runs it in. A fault is replied here
 * (then -ECANCELED); a database error is returned unreplied. */
static int patch_txn(sqlite3 *conn, void *arg)
{
    struct patch *pa = arg;
    struct kova_req *r = pa->r;
    struct kova_db_image im;
    json_t *img = NULL, *props = NULL;
    char *props_s = NULL, *tags_s = NULL;
    int e = -ECANCELED;
    if (!load_image(r, r->arg[0], &im) || !may_modify(r, &im))
        goto out;
    img = glance_json(&im);
    props = json_loads(im.properties, 0, NULL);
    bool queued = !strcmp(im.status, "queued");
    if (!json_is_object(props)) {
        json_decref(props);
        props = json_object();
    }
    size_t i;
    json_t *op;
    json_array_foreach(pa->ops, i, op)
    {
        json_t *o = json_object_get(op, "op"), *p = json_object_get(op, "path");
        json_t *v = json_object_get(op, "value");
        if (!json_is_string(o) || !json_is_string(p) || json_string_value(p)[0] != '/' ||
            strchr(json_string_value(p) + 1, '/')) {
            reply_fault(r, 400, "Invalid JSON patch operation.");
            goto out;
        }
        const char *opn = json_string_value(o), *k = json_string_value(p) + 1;
        bool rm = !strcmp(opn, "remove");
        if (!rm && strcmp(opn, "add") && strcmp(opn, "replace")) {
            reply_fault(r, 400, "Unsupported JSON patch operation '%.20s'.", opn);
            goto out;
        }
        if (!strcmp(k, "id")) {
            reply_fault(r, 403, "Attribute 'id' is read-only.");
            goto out;
        }
        if (rm) {
            if (is_core_attr(k) || in_list(readonly_attrs, k)) {
                reply_fault(r, 403, "Attribute '%.100s' cannot be removed.", k);
                goto out;
            }
            if (!json_object_get(props, k)) {
                reply_fault(r, 409, "Property %.100s does not exist.", k);
                goto out;
            }
            json_object_del(props, k);
            continue;
        }
        if (!v) { /* add and replace need one (RFC 6902) */
            reply_fault(r, 400, "Invalid JSON patch operation: '%.20s' needs a 'value'.", opn);
            goto out;
        }
        if (!v || !check_attr(r, k, v))
            goto out;
        if ((!strcmp(k, "disk_format") || !strcmp(k, "container_format")) && !queued) {
            reply_fault(r, 403, "Attribute %s can be only replaced for a queued image.", k);
            goto out;
        }
        if (is_core_attr(k))
            json_object_set(img, k, v);
        else
            json_object_set(props, k, v);
    }
    if (!props_within_quota(r, props))
        goto out;
    props_s = json_dumps(props, JSON_COMPACT);
    tags_s = json_dumps(json_object_get(img, "tags"), JSON_COMPACT);
    if (!props_s || !tags_s) {
        e = -EIO;
        goto out;
    }
    struct kova_db_image up = {0};
    snprintf(up.id, sizeof(up.id), "%s", im.id);
    up.has_name = copy_str(up.name, sizeof(up.name), json_object_get(img, "name"));
    copy_str(up.visibility, sizeof(up.visibility), json_object_get(img, "visibility"));
    up.has_disk_format =
        copy_str(up.disk_format, sizeof(up.disk_format), json_object_get(img, "disk_format"));
    up.has_container_format = copy_str(up.container_format, sizeof(up.container_format),
                                       json_object_get(img, "container_format"));
    up.min_disk = json_integer_value(json_object_get(img, "min_disk"));
    up.min_ram = json_integer_value(json_object_get(img, "min_ram"));
    up.is_protected = json_is_true(json_object_get(img, "protected"));
    up.properties = props_s;
    up.tags = tags_s;
    e = kova_db_image_update(conn, &up);
out:
    free(props_s);
    free(tags_s);
    kova_db_image_free(&im);
    json_decref(img);
    json_decref(props);
    return r->replied ? -ECANCELED : e;
}

/* PATCH with application/openstack-images-v2.1-json-patch: add/replace/remove of one level. */
static void glance_patch(struct kova_req *r)
{
    json_error_t jerr;
    json_t *ops = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_array(ops)) {
        json_decref(ops);
        reply_fault(r, 400, "A JSON patch array is required.");
        return;
    }
    struct patch pa = {r, ops};
    int e = kova_db_txn_conn(r->db, patch_txn, &pa);
    if (e >= 0)
        reply_image(r, r->arg[0], 200);
    else if (!r->replied)
        reply_db_error(r, e == -EBUSY ? e : -EIO);
    json_decref(ops);
}

/* ------------------------------------------------------------------ data: upload, download */

struct upload {
    char id[37];
    char part[4200], final[4200];
    int fd;
    uint64_t size;
    EVP_MD_CTX *md5, *sha512;
    bool failed;
};

static void upload_free(struct upload *u)
{
    if (u->fd >= 0)
        close(u->fd);
    EVP_MD_CTX_free(u->md5);
    EVP_MD_CTX_free(u->sha512);
    free(u);
}

static struct upload *upload_new(struct kova_api *api, const char *id)
{
    struct upload *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->fd = -1;
    snprintf(u->id, sizeof(u->id), "%s", id);
    snprintf(u->part, sizeof(u->part), "%s/%s.part", api->images_dir, id);
    snprintf(u->final, sizeof(u->final), "%s/%s", api->images_dir, id);
    u->md5 = EVP_MD_CTX_new();
    u->sha512 = EVP_MD_CTX_new();
    if (!u->md5 || !u->sha512 || !EVP_DigestInit_ex(u->md5, EVP_md5(), NULL) ||
        !EVP_DigestInit_ex(u->sha512, EVP_sha512(), NULL)) {
        upload_free(u);
        return NULL;
    }
    u->fd = open(u->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (u->fd < 0) {
        kova_log(0, "cannot create %s: %s", u->part, strerror(errno));
        upload_free(u);
        return NULL;
    }
    return u;
}

static int upload_write(struct upload *u, const char *data, size_t len, uint64_t max)
{
    if (u->failed)
        return -EIO;
    if (u->size + len > max) {
        u->failed = true;
        return -EFBIG;
    }
    EVP_DigestUpdate(u->md5, data, len);
    EVP_DigestUpdate(u->sha512, data, len);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(u->fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            u->failed = true;
            return -errno;
        }
        off += (size_t)n;
    }
    u->size += len;
    return 0;
}

/* Flushes, renames into place and records size and checksums; image goes `from` → active.
 * expect_* (optional) are validated first. */
static int upload_finish(sqlite3 *db, struct upload *u, const char *from, const char *expect_md5,
                         const char *expect_sha512)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char md5hex[33], shahex[129];
    EVP_DigestFinal_ex(u->md5, md, &n);
    for (unsigned i = 0; i < n && i < 16; i++)
        snprintf(md5hex + 2 * i, 3, "%02x", md[i]);
    EVP_DigestFinal_ex(u->sha512, md, &n);
    for (unsigned i = 0; i < n && i < 64; i++)
        snprintf(shahex + 2 * i, 3, "%02x", md[i]);
    if ((expect_md5 && strcasecmp(expect_md5, md5hex)) ||
        (expect_sha512 && strcasecmp(expect_sha512, shahex)))
        return -EBADMSG;
    if (fsync(u->fd) < 0)
        return -errno;
    close(u->fd);
    u->fd = -1;
    if (rename(u->part, u->final) < 0)
        return -errno;
    int e = kova_db_image_activate(db, u->id, from, (long long)u->size, md5hex, shahex);
    if (e < 0) {
        unlink(u->final); /* -ENOENT: the image was deleted meanwhile */
        return e == -ENOENT ? e : -EIO;
    }
    return 0;
}

int image_upload_begin(struct kova_req *r)
{
    struct kova_db_image im;
    if (!load_image(r, r->arg[0], &im))
        return -ENOENT;
    bool may = may_modify(r, &im);
    bool has_disk = im.has_disk_format, has_container = im.has_container_format;
    kova_db_image_free(&im);
    if (!may)
        return -EPERM;
    /* as Glance's domain model: data only for an image that says what it is */
    if (!has_disk || !has_container) {
        reply_fault(r, 400, "%s must be set prior to saving data.",
                    !has_disk && !has_container ? "Properties disk_format, container_format"
                    : !has_disk                 ? "Property disk_format"
                                                : "Property container_format");
        return -EINVAL;
    }
    int n = kova_db_image_set_status(r->db, r->arg[0], "queued", "saving");
    if (n <= 0) {
        if (n < 0)
            reply_db_error(r, n);
        else
            reply_fault(r, 409,
                        "Image status transition to saving is not allowed (the image is "
                        "not queued).");
        return -EBUSY;
    }
    struct upload *u = upload_new(r->api, r->arg[0]);
    if (!u) {
        kova_db_image_set_status(r->db, r->arg[0], "saving", "queued");
        reply_fault(r, 500, "Cannot store image data.");
        return -EIO;
    }
    r->upload = u;
    return 0;
}

int image_upload_chunk(struct kova_req *r, const char *data, size_t len)
{
    struct upload *u = r->upload;
    if (!u)
        return -EINVAL;
    int e = upload_write(u, data, len, r->api->cfg.max_image_size);
    if (e == -EFBIG)
        reply_fault(r, 413, "Image exceeds the storage quota (%llu bytes).",
                    (unsigned long long)r->api->cfg.max_image_size);
    else if (e < 0)
        reply_fault(r, 500, "Cannot store image data: %s", strerror(-e));
    return e;
}

/* The upload was cut short or refused: remove the partial data, back to queued. */
void image_upload_abort(struct kova_req *r)
{
    struct upload *u = r->upload;
    if (!u)
        return;
    r->upload = NULL;
    unlink(u->part);
    sqlite3 *db = kova_db_acquire(r->api->db);
    kova_db_image_set_status(db, u->id, "saving", "queued");
    kova_db_release(r->api->db, db);
    upload_free(u);
}

static void glance_upload_done(struct kova_req *r)
{
    struct upload *u = r->upload;
    if (!u) {
        reply_fault(r, 500, "No upload in progress.");
        return;
    }
    int e = upload_finish(r->db, u, "saving", NULL, NULL);
    if (e < 0) {
        reply_fault(r, 500, "Cannot store image data: %s", strerror(-e));
        return; /* the request's end aborts the upload */
    }
    r->upload = NULL;
    upload_free(u);
    reply_empty(r, 204);
}

static void glance_download(struct kova_req *r)
{
    struct kova_db_image im;
    if (!load_image(r, r->arg[0], &im))
        return;
    bool active = !strcmp(im.status, "active");
    kova_db_image_free(&im);
    if (!active) {
        reply_empty(r, 204); /* Glance: no data yet */
        return;
    }
    char path[4200];
    image_path(r, r->arg[0], "", path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        if (fd >= 0)
            close(fd);
        reply_fault(r, 404, "Image data for %s is missing.", r->arg[0]);
        return;
    }
    /* Serve the file directly: the reply helpers hold the fd for send_reply(). */
    r->resp_fd = fd;
    r->resp_len = (size_t)sb.st_size;
    r->ctype = "application/octet-stream";
    r->status = 200;
    r->replied = true;
}

/* At start: uploads and imports cut short by a crash leave 'saving'/'importing' images and
 * .part files; the images go back to queued (as after a failed upload), the files go. */
int images_recover(struct kova_api *api)
{
    sqlite3 *db = kova_db_acquire(api->db);
    char(*ids)[KOVA_DB_ID_MAX] = NULL;
    size_t n = 0;
    int e = kova_db_image_reset_unfinished(db, &ids, &n);
    for (size_t i = 0; i < n; i++) {
        char part[4200];
        snprintf(part, sizeof(part), "%s/%s.part", api->images_dir, ids[i]);
        unlink(part);
    }
    free(ids);
    /* data of images deleted just before a crash (the row goes first, then the file) */
    DIR *d = e < 0 ? NULL : opendir(api->images_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char id[37];
        size_t l = strlen(de->d_name);
        if (l != 36 && !(l == 41 && strcmp(de->d_name + 36, ".part") == 0))
            continue;
        memcpy(id, de->d_name, 36);
        id[36] = 0;
        if (!kova_is_uuid(id))
            continue;
        if (kova_db_image_exists(db, id) == 0) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", api->images_dir, de->d_name);
            if (unlink(path) == 0)
                kova_log(1, "removed %s: no such image", path);
        }
    }
    if (d)
        closedir(d);
    kova_db_release(api->db, db);
    return e < 0 ? e : (int)n;
}

/* ------------------------------------------------------------------ web-download import */

struct import_task {
    struct kova_api *api;
    struct upload *u;
    char *uri;
    char *expect_md5, *expect_sha512;
    char refused[80]; /* the address a connection was refused to, if one was */
};

/* Every socket libcurl opens for the import (the first connection and each redirect's) is to an
 * address it resolved: refused here unless the fetch filter allows it. */
static curl_socket_t import_socket(void *p, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct import_task *t = p;
    if (purpose != CURLSOCKTYPE_IPCXN ||
        !fetch_filter_connect_ok(&t->api->fetch, &a->addr, a->addrlen)) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->addr;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
            port = ntohs(s4->sin_port);
        } else if (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6)) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->addr;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
            port = ntohs(s6->sin6_port);
        }
        snprintf(t->refused, sizeof(t->refused), "%s port %u", host, port);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t import_write(char *data, size_t size, size_t nmemb, void *p)
{
    struct import_task *t = p;
    size_t len = size * nmemb;
    if (upload_write(t->u, data, len, t->api->cfg.max_image_size) < 0)
        return 0; /* aborts the transfer */
    return len;
}

/* Aborts a download when the agent stops. */
static int import_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
    struct import_task *t = p;
    return atomic_load(&t->api->stopping) ? 1 : 0;
}

static void import_run(void *p)
{
    struct import_task *t = p;
    sqlite3 *db = kova_db_acquire(t->api->db);
    CURL *c = curl_easy_init();
    CURLcode cc = CURLE_FAILED_INIT;
    long http = 0;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, t->uri);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->api->cfg.max_image_size);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, import_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "kova-agent web-download");
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, import_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, import_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, t);
        curl_easy_setopt(c, CURLOPT_PROXY, ""); /* no proxy from the environment: the filter
                                                   checks the address of the image's server */
        cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
        curl_easy_cleanup(c);
    }
    int e = -EIO;
    if (cc == CURLE_OK && http >= 200 && http < 300)
        e = upload_finish(db, t->u, "importing", t->expect_md5, t->expect_sha512);
    if (e < 0) {
        kova_log(0, "image %s: web-download of %s failed: %s%s%s%s%s (HTTP %ld)", t->u->id, t->uri,
                 cc != CURLE_OK ? curl_easy_strerror(cc) : "", cc != CURLE_OK ? "" : strerror(-e),
                 t->u->failed ? ", size limit or write error" : "",
                 t->refused[0] ? "; refused to connect to " : "", t->refused, http);
        unlink(t->u->part);
        kova_db_image_set_status(db, t->u->id, "importing", "queued");
    } else {
        kova_log(1, "image %s: imported %llu bytes from %s", t->u->id,
                 (unsigned long long)t->u->size, t->uri);
    }
    kova_db_release(t->api->db, db);
    upload_free(t->u);
    free(t->uri);
    free(t->expect_md5);
    free(t->expect_sha512);
    free(t);
}

/* Whether s is n hex digits. */
static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdefABCDEF") == n;
}

static void glance_import(struct kova_req *r)
{
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *m = json_object_get(body, "method");
    json_t *name = json_is_object(m) ? json_object_get(m, "name") : NULL;
    json_t *uri = json_is_object(m) ? json_object_get(m, "uri") : NULL;
    if (!json_is_string(name)) {
        reply_fault(r, 400, "Import request requires a 'method' with a 'name'.");
        goto out;
    }
    if (strcmp(json_string_value(name), "web-download") != 0) {
        reply_fault(r, 400, "Import method %.60s is not supported (only web-download).",
                    json_string_value(name));
        goto out;
    }
    if (!json_is_string(uri) || json_string_length(uri) > 2048 ||
        (strncmp(json_string_value(uri), "http://", 7) &&
         strncmp(json_string_value(uri), "https://", 8))) {
        reply_fault(r, 400, "web-download needs an http:// or https:// 'uri'.");
        goto out;
    }
    char why[160];
    if (!fetch_filter_url_ok(&r->api->fetch, json_string_value(uri), why, sizeof(why))) {
        reply_fault(r, 400, "URI for web-download does not pass filtering: %s", why);
        goto out;
    }
    json_t *vd = json_object_get(m, "validation_data");
    const char *want_md5 = NULL, *want_sha = NULL;
    if (vd) {
        json_t *algo = json_object_get(vd, "os_hash_algo");
        json_t *hv = json_object_get(vd, "os_hash_value");
        json_t *ck = json_object_get(vd, "checksum");
        if (!json_is_object(vd) ||
            (algo && (!json_is_string(algo) || strcmp(json_string_value(algo), "sha512"))) ||
            (hv && !json_is_string(hv)) || (ck && !json_is_string(ck))) {
            reply_fault(r, 400, "Invalid validation_data (os_hash_algo must be sha512).");
            goto out;
        }
        want_md5 = ck ? json_string_value(ck) : NULL;
        want_sha = hv ? json_string_value(hv) : NULL;
        /* as Glance: a hash value needs its algorithm, and both are hex of their length */
        if ((!algo != !hv) || (want_md5 && !is_hex(want_md5, 32)) ||
            (want_sha && !is_hex(want_sha, 128))) {
            reply_fault(r, 400,
                        "Invalid validation_data: os_hash_algo and os_hash_value go together, "
                        "as hex digests (sha512: 128 digits, checksum: 32).");
            goto out;
        }
    }
    struct kova_db_image im;
    if (!load_image(r, r->arg[0], &im))
        goto out;
    bool may = may_modify(r, &im);
    bool has_disk = im.has_disk_format, has_container = im.has_container_format;
    kova_db_image_free(&im);
    if (!may)
        goto out;
    if (!has_container || !has_disk) { /* Glance's import checks, in its order */
        reply_fault(r, 409, "'%s' needs to be set before import",
                    !has_container ? "container_format" : "disk_format");
        goto out;
    }
    int n = kova_db_image_set_status(r->db, r->arg[0], "queued", "importing");
    if (n <= 0) {
        reply_fault(r, 409,
                    "Image status transition to importing is not allowed (the image is "
                    "not queued).");
        goto out;
    }
    struct import_task *t = calloc(1, sizeof(*t));
    if (t) {
        t->api = r->api;
        t->u = upload_new(r->api, r->arg[0]);
        t->uri = strdup(json_string_value(uri));
        t->expect_md5 = want_md5 ? strdup(want_md5) : NULL;
        t->expect_sha512 = want_sha ? strdup(want_sha) : NULL;
    }
    if (!t || !t->u || !t->uri || !r->api->cfg.submit ||
        r->api->cfg.submit(r->api->cfg.submit_opaque, import_run, t) < 0) {
        if (t) {
            if (t->u) {
                unlink(t->u->part);
                upload_free(t->u);
            }
            free(t->uri);
            free(t->expect_md5);
            free(t->expect_sha512);
            free(t);
        }
        kova_db_image_set_status(r->db, r->arg[0], "importing", "queued");
        reply_fault(r, 500, "Cannot start the import.");
        goto out;
    }
    reply_empty(r, 202);
out:
    json_decref(body);
}

static void glance_import_info(struct kova_req *r)
{
    reply_json(r, 200,
               json_pack("{s:{s:s, s:s, s:[s]}}", "import-methods", "description",
                         "Import methods available.", "type", "array", "value", "web-download"));
}

/* ------------------------------------------------------------------ Nova's image proxy */

static const char *nova_status(const char *s)
{
    if (!strcmp(s, "active"))
        return "ACTIVE";
    if (!strcmp(s, "queued") || !strcmp(s, "saving") || !strcmp(s, "importing"))
        return "SAVING";
    if (!strcmp(s, "deleted") || !strcmp(s, "pending_delete"))
        return "DELETED";
    return "ERROR";
}

static json_t *nova_image_json(struct kova_req *r, const struct kova_db_image *im, bool detail)
{
    const char *id = im->id;
    json_t *links = link_list(r, "images", id);
    char alt[600];
    char ibase[320];
    image_base_url(r, ibase, sizeof(ibase));
    snprintf(alt, sizeof(alt), "%s/images/%s", ibase, id);
    json_array_append_new(links, json_pack("{s:s, s:s, s:s}", "rel", "alternate", "type",
                                           "application/vnd.openstack.image", "href", alt));
    json_t *o = json_pack("{s:s, s:o, s:o}", "id", id, "name", opt_str(im->has_name, im->name),
                          "links", links);
    if (!detail)
        return o;
    const char *status = nova_status(im->status);
    json_t *md = json_loads(im->properties, 0, NULL);
    if (!json_is_object(md)) {
        json_decref(md);
        md = json_object();
    }
    json_object_update_new(
        o, json_pack("{s:s, s:I, s:I, s:i, s:s, s:s, s:o, s:o}", "status", status, "minDisk",
                     (json_int_t)im->min_disk, "minRam", (json_int_t)im->min_ram, "progress",
                     !strcmp(status, "ACTIVE") ? 100 : (!strcmp(status, "SAVING") ? 25 : 0),
                     "created", im->created_at, "updated", im->updated_at, "metadata", md,
                     "OS-EXT-IMG-SIZE:size", im->has_size ? json_integer(im->size) : json_null()));
    return o;
}

static void nova_list(struct kova_req *r)
{
    bool detail = route_variant(r) == LIST_DETAIL;
    int limit;
    if (!req_limit(r, &limit))
        return;
    const char *name = req_query(r, "name");
    const char *status = req_query(r, "status");
    const char *marker = req_query(r, "marker");
    /* the status filter is on Nova's status (nova_status): applied here, before the limit */
    struct kova_db_image_filter f = {.project_id = r->auth.project_id,
                                     .is_admin = r->auth.is_admin,
                                     .name = name,
                                     .marker = marker,
                                     .limit = status ? -1 : limit};
    /* changes-since: images updated then or later, as Nova's proxy asks Glance */
    if (!time_filter(r, "changes-since", &f.updated) ||
        !marker_visible(r, marker, "marker [%.100s] not found"))
        return;
    if (f.updated.op == KOVA_DB_EQ)
        f.updated.op = KOVA_DB_GTE;
    else if (f.updated.op != KOVA_DB_ANY) {
        reply_fault(r, 400, "Invalid changes-since value.");
        return;
    }
    struct kova_db_image *v;
    size_t n;
    int e = kova_db_image_list(r->db, &f, &v, &n);
    if (reply_list_failed(r, e, "marker [%.100s] not found", marker))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n && (int)json_array_size(arr) < limit; i++) {
        if (status && strcasecmp(status, nova_status(v[i].status)))
            continue;
        json_array_append_new(arr, nova_image_json(r, &v[i], detail));
    }
    kova_db_image_list_free(v, n);
    reply_json(r, 200, json_pack("{s:o}", "images", arr));
}

static void nova_show(struct kova_req *r)
{
    if (!kova_is_uuid(r->arg[0])) {
        reply_fault(r, 404, "Image not found.");
        return;
    }
    struct kova_db_image im;
    if (!load_image(r, r->arg[0], &im))
        return;
    json_t *o = nova_image_json(r, &im, true);
    kova_db_image_free(&im);
    reply_json(r, 200, json_pack("{s:o}", "image", o));
}

static void nova_delete(struct kova_req *r)
{
    if (delete_image(r, r->arg[0]) == 0)
        reply_empty(r, 204);
}

const struct kova_route kova_image_routes[] = {
    {SVC_IMAGE, "POST", "/v2/images", glance_create, 0, RULE_MEMBER},
    {SVC_IMAGE, "GET", "/v2/images", glance_list, 0, RULE_READER},
    {SVC_IMAGE, "GET", "/v2/images/*", glance_show, 0, RULE_READER},
    {SVC_IMAGE, "PATCH", "/v2/images/*", glance_patch, 0, RULE_MEMBER},
    {SVC_IMAGE, "DELETE", "/v2/images/*", glance_delete, 0, RULE_MEMBER},
    {SVC_IMAGE, "PUT", "/v2/images/*/file", glance_upload_done, ROUTE_UPLOAD, RULE_MEMBER},
    {SVC_IMAGE, "GET", "/v2/images/*/file", glance_download, 0, RULE_READER},
    {SVC_IMAGE, "POST", "/v2/images/*/import", glance_import, 0, RULE_MEMBER},
    {SVC_IMAGE, "GET", "/v2/info/import", glance_import_info, 0, RULE_ANY},
    {SVC_COMPUTE, "GET", "/images", nova_list, ROUTE_VARIANT(LIST_BRIEF), RULE_READER},
    {SVC_COMPUTE, "GET", "/images/detail", nova_list, ROUTE_VARIANT(LIST_DETAIL), RULE_READER},
    {SVC_COMPUTE, "GET", "/images/*", nova_show, 0, RULE_READER},
    {SVC_COMPUTE, "DELETE", "/images/*", nova_delete, 0, RULE_MEMBER},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

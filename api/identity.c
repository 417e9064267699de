/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A noauth identity endpoint (/identity/v3) so that clients which insist on a Keystone (password
 * auth, `openstack versions show`, service catalogs) work unchanged. It follows noauth2: any
 * password is accepted, the token issued is "user:project", the user "admin" is an
 * administrator, and the catalog lists this agent's compute and image endpoints.
 * It exists only with auth_strategy noauth2; Keystone validation replaces it later.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static json_t *v3_version(struct kova_req *r)
{
    char href[400];
    snprintf(href, sizeof(href), "%s/identity/v3/", r->base_url);
    return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "id", "v3.14", "status",
                     "stable", "updated", "2020-04-07T00:00:00Z", "links", "rel", "self", "href",
                     href, "media-types", "base", "application/json", "type",
                     "application/vnd.openstack.identity-v3+json");
}

static void identity_versions(struct kova_req *r)
{
    reply_json(r, 200, json_pack("{s:{s:[o]}}", "versions", "values", v3_version(r)));
}

static void identity_v3(struct kova_req *r)
{
    reply_json(r, 200, json_pack("{s:o}", "version", v3_version(r)));
}

/* A name usable inside a noauth2 token: printable, no ':', '/' or spaces, 1..64 chars. */
static bool valid_part(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == ':' || *p == '/' || *p == 0x7f)
            return false;
    return true;
}

static const char *token_part(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (!json_is_string(v) && k2)
        v = json_object_get(o, k2);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return valid_part(json_string_value(v)) ? json_string_value(v) : NULL;
}

static json_t *endpoint(const char *id, const char *url)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "interface", "public", "region",
                     "RegionOne", "region_id", "RegionOne", "url", url);
}

static void issue_token(struct kova_req *r)
{
    json_t *body = req_json(r);
    if (!body)
        return;
    json_t *auth = json_object_get(body, "auth");
    json_t *ident = json_object_get(auth, "identity");
    json_t *methods = json_object_get(ident, "methods");
    json_t *scope = json_object_get(auth, "scope");
    if (!json_is_object(auth) || !json_is_object(ident) || !json_is_array(methods)) {
        reply_fault(r, 400, "Expecting auth.identity.methods.");
        goto out;
    }
    const char *user = NULL, *project = NULL;
    char ubuf[80];
    json_t *pw = json_object_get(ident, "password");
    json_t *tok = json_object_get(ident, "token");
    if (json_is_object(pw)) {
        user = token_part(json_object_get(pw, "user"), "name", "id");
    } else if (json_is_object(tok)) {
        /* re-scoping a noauth2 token: its user part is the user */
        json_t *id = json_object_get(tok, "id");
        if (json_is_string(id) && json_string_length(id) < sizeof(ubuf)) {
            snprintf(ubuf, sizeof(ubuf), "%s", json_string_value(id));
            char *c = strchr(ubuf, ':');
            if (c)
                *c = 0;
            if (valid_part(ubuf))
                user = ubuf;
        }
    }
    if (!user) {
        reply_fault(r, 401,
                    "The request you have made requires authentication (a user name "
                    "without ':', '/' or spaces is needed).");
        goto out;
    }
    json_t *proj = json_object_get(scope, "project");
    project = json_is_object(proj) ? token_part(proj, "name", "id") : NULL;
    if (!project)
        project = user;
    char token[160];
    snprintf(token, sizeof(token), "%s:%s", user, project);
    char compute[400], image[400], ident_url[400], issued[32], expires[32];
    snprintf(compute, sizeof(compute), "%s/v2.1", r->base_url);
    image_base_url(r, image, sizeof(image));
    snprintf(ident_url, sizeof(ident_url), "%s/identity/v3", r->base_url);
    time_t now = time(NULL), exp = now + 86400;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    gmtime_r(&exp, &tm);
    strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    json_t *catalog = json_array();
    json_array_append_new(catalog, json_pack("{s:s, s:s, s:s, s:[o]}", "id", "compute", "type",
                                             "compute", "name", "nova", "endpoints",
                                             endpoint("compute-public", compute)));
    if (r->api->cfg.image_port)
        json_array_append_new(catalog, json_pack("{s:s, s:s, s:s, s:[o]}", "id", "image", "type",
                                                 "image", "name", "glance", "endpoints",
                                                 endpoint("image-public", image)));
    json_array_append_new(catalog, json_pack("{s:s, s:s, s:s, s:[o]}", "id", "identity", "type",
                                             "identity", "name", "keystone", "endpoints",
                                             endpoint("identity-public", ident_url)));
    bool admin = strcmp(user, "admin") == 0;
    json_t *t = json_pack(
        "{s:{s:[s], s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:{s:s, s:s}}, s:o, s:o, s:s, s:s, "
        "s:b}}",
        "token", "methods", json_is_object(pw) ? "password" : "token", "user", "id", user, "name",
        user, "domain", "id", "default", "name", "Default", "project", "id", project, "name",
        project, "domain", "id", "default", "name", "Default", "roles",
        admin ? json_pack("[{s:s, s:s}, {s:s, s:s}]", "id", "admin", "name", "admin", "id",
                          "member", "name", "member")
              : json_pack("[{s:s, s:s}]", "id", "member", "name", "member"),
        "catalog", catalog, "issued_at", issued, "expires_at", expires, "is_domain", 0);
    r->subject_token = strdup(token);
    reply_json(r, 201, t);
out:
    json_decref(body);
}

const struct kova_route kova_identity_routes[] = {
    {SVC_COMPUTE, "GET", "/identity", identity_versions, 0, RULE_PUBLIC},
    {SVC_COMPUTE, "GET", "/identity/v3", identity_v3, 0, RULE_PUBLIC},
    {SVC_COMPUTE, "POST", "/identity/v3/auth/tokens", issue_token, 0, RULE_PUBLIC},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

/* SPDX-License-Identifier: Apache-2.0 */
/* Version discovery: GET /, /v2.1, /v2.1/, /v2 (compute) and GET / , /versions (image). */
#include "internal.h"

#include <stdio.h>

static json_t *v21(struct kova_req *r)
{
    char href[400];
    snprintf(href, sizeof(href), "%s/v2.1/", r->base_url);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", "v2.1", "status", "CURRENT",
                     "version", kova_api_max_version(), "min_version", kova_api_min_version(),
                     "updated", "2013-07-23T11:33:21Z", "links", "rel", "self", "href", href);
}

static json_t *v20(struct kova_req *r)
{
    char href[400];
    snprintf(href, sizeof(href), "%s/v2/", r->base_url);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", "v2.0", "status",
                     "SUPPORTED", "version", "", "min_version", "", "updated",
                     "2011-01-21T11:33:21Z", "links", "rel", "self", "href", href);
}

static void add_detail(json_t *v, const char *mtype)
{
    json_array_append_new(json_object_get(v, "links"),
                          json_pack("{s:s, s:s, s:s}", "rel", "describedby", "type", "text/html",
                                    "href", "http://docs.openstack.org/"));
    json_object_set_new(v, "media-types",
                        json_pack("[{s:s, s:s}]", "base", "application/json", "type", mtype));
}

static void root(struct kova_req *r)
{
    reply_json(r, 200, json_pack("{s:[o,o]}", "versions", v20(r), v21(r)));
}

static void show_v21(struct kova_req *r)
{
    json_t *v = v21(r);
    add_detail(v, "application/vnd.openstack.compute+json;version=2.1");
    reply_json(r, 200, json_pack("{s:o}", "version", v));
}

static void show_v20(struct kova_req *r)
{
    json_t *v = v20(r);
    add_detail(v, "application/vnd.openstack.compute+json;version=2");
    reply_json(r, 200, json_pack("{s:o}", "version", v));
}

/* Glance: the versions document (200, as clients accept it; Glance itself answers 300). */
static void image_versions(struct kova_req *r)
{
    char href[400];
    snprintf(href, sizeof(href), "%s/v2/", r->base_url);
    json_t *arr = json_array();
    static const char *const ids[] = {"v2.6", "v2.0"};
    for (int i = 0; i < 2; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", ids[i], "status",
                                             i == 0 ? "CURRENT" : "SUPPORTED", "links", "rel",
                                             "self", "href", href));
    reply_json(r, 200, json_pack("{s:o}", "versions", arr));
}

const struct kova_route kova_version_routes[] = {
    {SVC_COMPUTE, "GET", "/", root, 0, RULE_PUBLIC},
    {SVC_COMPUTE, "GET", "/v2.1", show_v21, 0, RULE_PUBLIC},
    {SVC_COMPUTE, "GET", "/v2", show_v20, 0, RULE_PUBLIC},
    {SVC_IMAGE, "GET", "/", image_versions, 0, RULE_PUBLIC},
    {SVC_IMAGE, "GET", "/versions", image_versions, 0, RULE_PUBLIC},
    {SVC_IMAGE, "GET", "/v2", image_versions, 0, RULE_PUBLIC},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

/* SPDX-License-Identifier: Apache-2.0 */
/* This host as Nova presents it: os-availability-zone, os-hypervisors (real figures from /proc
 * and the state dir's file system), os-aggregates, os-services. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct host_figures {
    long long vcpus, memory_mb, memory_mb_used, local_gb, local_gb_used, free_disk_gb;
    long long vcpus_used, running_vms, workload;
    double load[3];
    double uptime_s;
};

static long long meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int host_figures(struct kova_req *r, struct host_figures *h)
{
    memset(h, 0, sizeof(*h));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    h->vcpus = n > 0 ? n : 1;
    long long total = meminfo_kb("MemTotal"), avail = meminfo_kb("MemAvailable");
    h->memory_mb = total > 0 ? total / 1024 : 0;
    h->memory_mb_used = (total > 0 && avail >= 0) ? (total - avail) / 1024 : 0;
    struct statvfs sv;
    if (statvfs(r->api->state_dir, &sv) == 0) {
        unsigned long long bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
        h->local_gb = (long long)(sv.f_blocks * bs >> 30);
        h->free_disk_gb = (long long)(sv.f_bavail * bs >> 30);
        h->local_gb_used = h->local_gb - h->free_disk_gb;
    }
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &h->load[0], &h->load[1], &h->load[2]) != 3)
            h->load[0] = h->load[1] = h->load[2] = 0;
        fclose(f);
    }
    f = fopen("/proc/uptime", "re");
    if (f) {
        if (fscanf(f, "%lf", &h->uptime_s) != 1)
            h->uptime_s = 0;
        fclose(f);
    }
    struct kova_db_server_usage u;
    int e = kova_db_server_usage_running(r->db, r->api->host_name, &u);
    if (e < 0)
        return e;
    h->running_vms = u.count;
    h->vcpus_used = u.vcpus;
    h->workload = u.tasks;
    return 0;
}

static json_t *hypervisor_brief(struct kova_req *r)
{
    return json_pack("{s:i, s:s, s:s, s:s}", "id", 1, "hypervisor_hostname", r->api->host_name,
                     "state", "up", "status", "enabled");
}

static json_t *hypervisor_detail(struct kova_req *r)
{
    struct host_figures h;
    if (host_figures(r, &h) < 0)
        return NULL;
    json_t *o = hypervisor_brief(r);
    char cpu_info[128];
    snprintf(cpu_info, sizeof(cpu_info), "{\"arch\": \"x86_64\", \"topology\": {\"cores\": %lld}}",
             h.vcpus);
    json_object_update_new(
        o,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:i, s:s, "
                  "s:s, s:{s:s, s:i, s:n}}",
                  "vcpus", (json_int_t)h.vcpus, "memory_mb", (json_int_t)h.memory_mb, "local_gb",
                  (json_int_t)h.local_gb, "vcpus_used", (json_int_t)h.vcpus_used, "memory_mb_used",
                  (json_int_t)h.memory_mb_used, "local_gb_used", (json_int_t)h.local_gb_used,
                  "free_ram_mb", (json_int_t)(h.memory_mb - h.memory_mb_used), "free_disk_gb",
                  (json_int_t)h.free_disk_gb, "current_workload", (json_int_t)h.workload,
                  "running_vms", (json_int_t)h.running_vms, "disk_available_least",
                  (json_int_t)h.free_disk_gb, "hypervisor_type", "KVM", "hypervisor_version", 1000,
                  "host_ip", r->api->listen_host, "cpu_info", cpu_info, "service", "host",
                  r->api->host_name, "id", 1, "disabled_reason"));
    return o;
}

/* Checks the hypervisor id of the URL (this host is hypervisor 1). */
static bool hypervisor_id_ok(struct kova_req *r)
{
    long long id;
    if (!kova_parse_int(r->arg[0], &id) || id != 1) {
        reply_fault(r, 404, "Hypervisor with ID %.100s could not be found.", r->arg[0]);
        return false;
    }
    return true;
}

enum { HYP_SHOW = LIST_DETAIL + 1 }; /* beside LIST_BRIEF and LIST_DETAIL */

/* GET /os-hypervisors, /os-hypervisors/detail and /os-hypervisors/{id} */
static void hyp_get(struct kova_req *r)
{
    int v = route_variant(r);
    if (v == HYP_SHOW && !hypervisor_id_ok(r))
        return;
    json_t *h = v == LIST_BRIEF ? hypervisor_brief(r) : hypervisor_detail(r);
    if (!h) {
        reply_db_error(r, -EIO);
        return;
    }
    if (v == HYP_SHOW)
        reply_json(r, 200, json_pack("{s:o}", "hypervisor", h));
    else
        reply_json(r, 200, json_pack("{s:[o]}", "hypervisors", h));
}

static void hyp_uptime(struct kova_req *r)
{
    if (!hypervisor_id_ok(r))
        return;
    struct host_figures h;
    if (host_figures(r, &h) < 0) {
        reply_db_error(r, -EIO);
        return;
    }
    /* the `uptime` command's format, which clients parse */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    long long up = (long long)h.uptime_s;
    long long days = up / 86400, hours = (up % 86400) / 3600, mins = (up % 3600) / 60;
    char upstr[64], line[256];
    if (days > 0)
        snprintf(upstr, sizeof(upstr), "%lld day%s, %2lld:%02lld", days, days == 1 ? "" : "s",
                 hours, mins);
    else if (hours > 0)
        snprintf(upstr, sizeof(upstr), "%2lld:%02lld", hours, mins);
    else
        snprintf(upstr, sizeof(upstr), "%lld min", mins);
    snprintf(line, sizeof(line), " %02d:%02d:%02d up %s,  0 users,  load average: %.2f, %.2f, %.2f",
             tm.tm_hour, tm.tm_min, tm.tm_sec, upstr, h.load[0], h.load[1], h.load[2]);
    json_t *o = hypervisor_brief(r);
    json_object_set_new(o, "uptime", json_string(line));
    reply_json(r, 200, json_pack("{s:o}", "hypervisor", o));
}

static void hyp_statistics(struct kova_req *r)
{
    json_t *h = hypervisor_detail(r);
    if (!h) {
        reply_db_error(r, -EIO);
        return;
    }
    static const char *const keys[] = {"vcpus",
                                       "memory_mb",
                                       "local_gb",
                                       "vcpus_used",
                                       "memory_mb_used",
                                       "local_gb_used",
                                       "free_ram_mb",
                                       "free_disk_gb",
                                       "current_workload",
                                       "running_vms",
                                       "disk_available_least",
                                       NULL};
    json_t *o = json_pack("{s:i}", "count", 1);
    for (int i = 0; keys[i]; i++)
        json_object_set(o, keys[i], json_object_get(h, keys[i]));
    json_decref(h);
    reply_json(r, 200, json_pack("{s:o}", "hypervisor_statistics", o));
}

static void az_list(struct kova_req *r)
{
    reply_json(r, 200,
               json_pack("{s:[{s:s, s:{s:b}, s:n}]}", "availabilityZoneInfo", "zoneName",
                         r->api->az, "zoneState", "available", 1, "hosts"));
}

static void az_detail(struct kova_req *r)
{
    char now[32];
    kova_time_iso(now, false);
    json_t *hosts = json_object();
    json_object_set_new(hosts, r->api->host_name,
                        json_pack("{s:{s:b, s:b, s:s}}", "nova-compute", "available", 1, "active",
                                  1, "updated_at", now));
    reply_json(r, 200,
               json_pack("{s:[{s:s, s:{s:b}, s:o}]}", "availabilityZoneInfo", "zoneName",
                         r->api->az, "zoneState", "available", 1, "hosts", hosts));
}

static void aggregates_list(struct kova_req *r)
{
    reply_json(r, 200, json_pack("{s:[]}", "aggregates"));
}

static void services_list(struct kova_req *r)
{
    char now[32];
    kova_time_iso(now, false);
    reply_json(r, 200,
               json_pack("{s:[{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:b}]}", "services", "id", 1,
                         "binary", "nova-compute", "host", r->api->host_name, "zone", r->api->az,
                         "status", "enabled", "state", "up", "updated_at", now, "disabled_reason",
                         "forced_down", 0));
}

const struct kova_route kova_host_routes[] = {
    {SVC_COMPUTE, "GET", "/os-availability-zone", az_list, 0, RULE_ANY},
    {SVC_COMPUTE, "GET", "/os-availability-zone/detail", az_detail, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-hypervisors", hyp_get, ROUTE_VARIANT(LIST_BRIEF), RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-hypervisors/detail", hyp_get, ROUTE_VARIANT(LIST_DETAIL), RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-hypervisors/statistics", hyp_statistics, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-hypervisors/*", hyp_get, ROUTE_VARIANT(HYP_SHOW), RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-hypervisors/*/uptime", hyp_uptime, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-aggregates", aggregates_list, 0, RULE_ADMIN},
    {SVC_COMPUTE, "GET", "/os-services", services_list, 0, RULE_ADMIN},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};

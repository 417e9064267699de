/* SPDX-License-Identifier: Apache-2.0 */
/* network.host: kova network's host part for real (NEEDS ROOT): two networks on fresh bridges,
 * taps on them, dnsmasq handing out the static leases to busybox udhcpc in a network namespace
 * behind a veth, dnsmasq's restart after SIGKILL, the sweep of stray taps, a dnsmasq left by a
 * previous run stopped, masquerade (in a network namespace of its own). Names carry the pid, so
 * that parallel runs do not collide; everything made is removed at the end, failure or not. */
#include "kova/network.h"
#include "kova/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/kova_test.h"

static char br_a[16], br_b[16], br_m[16], ns[32], veth_h[16], veth_n[16], run_dir[64];
static char tap_stray[16], tap_kept[16], tap_free[16];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A command's output (up to n-1 bytes). */
static void sh_out(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sh_out(char *buf, size_t n, const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    buf[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    size_t len = fread(buf, 1, n - 1, f);
    buf[len] = '\0';
    pclose(f);
}

static void read_file(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t len = fread(buf, 1, n - 1, f);
    buf[len] = '\0';
    fclose(f);
}

static long sys_long(const char *ifname, const char *attr)
{
    char path[128], buf[64];
    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr);
    read_file(path, buf, sizeof(buf));
    return buf[0] ? strtol(buf, NULL, 0) : -1;
}

static bool link_exists(const char *ifname)
{
    char path[128];
    snprintf(path, sizeof(path), "/sys/class/net/%s", ifname);
    return access(path, F_OK) == 0;
}

/* The bridge ifname is a port of ("" for none). */
static void master_of(const char *ifname, char out[16])
{
    char path[128], link[256];
    snprintf(path, sizeof(path), "/sys/class/net/%s/master", ifname);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    out[0] = '\0';
    if (n > 0) {
        link[n] = '\0';
        const char *b = strrchr(link, '/');
        snprintf(out, 16, "%.15s", b ? b + 1 : link);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
}

/* A live (not zombie) process. */
static bool alive(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    read_file(path, buf, sizeof(buf));
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Live dnsmasqs whose command line has arg `want` (kill: SIGKILL them); how many. */
static int dnsmasqs(const char *want, bool kill_them)
{
    DIR *d = opendir("/proc");
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || !alive(pid))
            continue;
        char path[64], cmd[8192];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, cmd, sizeof(cmd) - 1);
        if (fd >= 0)
            close(fd);
        if (n <= 0 || !strstr(cmd, "dnsmasq"))
            continue;
        cmd[n] = '\0';
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(cmd + i) + 1)
            if (strstr(cmd + i, want)) {
                count++;
                if (kill_them)
                    kill(pid, SIGKILL);
                break;
            }
    }
    if (d)
        closedir(d);
    return count;
}

static void cleanup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    /* the run dir first: a host still running (cleanup from a signal) cannot restart its
     * dnsmasqs without it (their log is there) */
    if (run_dir[0])
        kt_rm_tree(run_dir);
    for (int i = 0; i < 3 && dnsmasqs(run_dir, true); i++)
        sleep_ms(100);
    sh("ip netns del %s 2>/dev/null", ns);
    const char *links[] = {veth_h, br_a, br_b, tap_stray, tap_kept, tap_free};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (links[i][0] && link_exists(links[i]))
            sh("ip link del %s 2>/dev/null", links[i]);
}

/* SIGALRM (the test's own time limit), SIGINT, SIGTERM: clean up, fail */
static void on_signal(int sig)
{
    static const char alrm[] = "network.host: timed out\n", other[] = "network.host: killed\n";
    const char *msg = sig == SIGALRM ? alrm : other;
    size_t len = sig == SIGALRM ? sizeof(alrm) - 1 : sizeof(other) - 1;
    if (write(2, msg, len) < 0) {
    }
    cleanup();
    _exit(1);
}

struct got {
    char ip[32], router[32], dns[64], mtu[16], hostname[64], subnet[32];
};

static void field(const char *out, const char *key, char *dst, size_t n)
{
    const char *p = strstr(out, key);
    dst[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    size_t len = strcspn(p, "\n");
    snprintf(dst, n, "%.*s", (int)(len < n ? len : n - 1), p);
}

/* busybox udhcpc in the namespace, from MAC mac: 0 and what it got, or -1 (no lease). */
static int dhcp(const char *mac, struct got *g)
{
    memset(g, 0, sizeof(*g));
    sh("ip -n %s link set %s down && ip -n %s link set %s address %s && ip -n %s link set %s up",
       ns, veth_n, ns, veth_n, mac, ns, veth_n);
    char out[4096];
    sh_out(out, sizeof(out),
           "ip netns exec %s busybox udhcpc -i %s -n -q -f -t 4 -T 1 -O mtu -s %s/udhcpc.sh 2>&1",
           ns, veth_n, run_dir);
    field(out, "KOVA_IP=", g->ip, sizeof(g->ip));
    field(out, "KOVA_ROUTER=", g->router, sizeof(g->router));
    field(out, "KOVA_DNS=", g->dns, sizeof(g->dns));
    field(out, "KOVA_MTU=", g->mtu, sizeof(g->mtu));
    field(out, "KOVA_HOSTNAME=", g->hostname, sizeof(g->hostname));
    field(out, "KOVA_SUBNET=", g->subnet, sizeof(g->subnet));
    if (!g->ip[0]) {
        printf("udhcpc from %s got nothing:\n%s", mac, out);
        return -1;
    }
    printf("udhcpc from %s: ip %s router %s dns %s mtu %s hostname %s\n", mac, g->ip, g->router,
           g->dns, g->mtu, g->hostname);
    return 0;
}

static int wait_new_pid(struct kova_net_host *h, const char *uuid, int old, int ms)
{
    for (int t = 0; t < ms; t += 50) {
        int pid = kova_net_host_dnsmasq_pid(h, uuid);
        if (pid > 0 && pid != old)
            return pid;
        sleep_ms(50);
    }
    return 0;
}

static int count_lines(const char *path, const char *what)
{
    char buf[65536];
    read_file(path, buf, sizeof(buf));
    int n = 0;
    for (const char *p = buf; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* masquerade, in a network namespace of this child process's own (its iptables and
 * ip_forward); the child's exit status: 0 when all is well. */
static int masquerade_child(const char *cidr)
{
    if (unshare(CLONE_NEWNET) < 0) {
        perror("unshare(CLONE_NEWNET)");
        return 1;
    }
    struct kova_net_def d;
    char err[256];
    if (kova_net_def_init(&d, "masq", err, sizeof(err)) < 0 ||
        kova_net_def_set(&d, "cidr", cidr, err, sizeof(err)) < 0 ||
        kova_net_def_set(&d, "bridge", br_m, err, sizeof(err)) < 0 ||
        kova_net_def_set(&d, "masquerade", "uplink0", err, sizeof(err)) < 0 ||
        kova_net_def_finish(&d, err, sizeof(err)) < 0) {
        fprintf(stderr, "masq def: %s\n", err);
        return 1;
    }
    /* a run dir user nobody cannot reach: dnsmasq stays root, and re-reads its hosts file */
    char dir[100], priv[80], status[4096], path[160], log[65536];
    snprintf(priv, sizeof(priv), "%s/private", run_dir);
    snprintf(dir, sizeof(dir), "%s/masq", priv);
    CHECK(mkdir(priv, 0700) == 0);
    struct kova_net_host_config cfg = {.defs = &d, .ndefs = 1, .run_dir = dir};
    for (int round = 0; round < 2; round++) {
        struct kova_net_host *h = NULL;
        int r = kova_net_host_start(&cfg, &h, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "masq start: %s\n", err);
            CHECK(r == 0);
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/status", kova_net_host_dnsmasq_pid(h, d.uuid));
        read_file(path, status, sizeof(status));
        CHECK(strstr(status, "\nUid:\t0\t") != NULL);
        struct kova_net_lease l = {
            .network_uuid = d.uuid, .mac = "fa:16:3e:00:00:05", .ip = d.net + 5};
        CHECK(kova_net_host_set_leases(h, &l, 1) == 0);
        snprintf(path, sizeof(path), "%s/%s.log", dir, d.uuid);
        char want[160];
        snprintf(want, sizeof(want), "read %s/%s.hosts", dir, d.uuid);
        for (int t = 0; t < 100 && count_lines(path, want) < 2; t++)
            sleep_ms(20);
        CHECK(count_lines(path, want) == 2);
        read_file(path, log, sizeof(log));
        CHECK(!strstr(log, "cannot") && !strstr(log, "failed"));
        kova_net_host_stop(h);
    }
    char rules[4096], fwd[16], want[160];
    sh_out(rules, sizeof(rules), "iptables -w -t nat -S POSTROUTING");
    read_file("/proc/sys/net/ipv4/ip_forward", fwd, sizeof(fwd));
    snprintf(want, sizeof(want), "-A POSTROUTING -s %s ! -d %s -o uplink0 -j MASQUERADE", cidr,
             cidr);
    char *first = strstr(rules, want);
    CHECK(first != NULL);
    CHECK(first && !strstr(first + 1, want)); /* added once, for two starts */
    CHECK(fwd[0] == '1');
    if (failures)
        fprintf(stderr, "nat POSTROUTING:\n%s", rules);
    return failures ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (geteuid() != 0) {
        fprintf(stderr, "network.host needs root (bridges, taps, dnsmasq, network namespaces); "
                        "run it as root\n");
        return 1;
    }
    if (sh("command -v busybox >/dev/null && command -v iptables >/dev/null && "
           "test -x /usr/sbin/dnsmasq && test -c /dev/net/tun") != 0) {
        fprintf(stderr, "network.host needs busybox, iptables, dnsmasq (dnsmasq-base) and "
                        "/dev/net/tun\n");
        return 1;
    }
    kova_log_setup("network.host", KOVA_LOG_INFO);
    int pid = (int)getpid();
    snprintf(br_a, sizeof(br_a), "kvta%d", pid);
    snprintf(br_b, sizeof(br_b), "kvtb%d", pid);
    snprintf(br_m, sizeof(br_m), "kvtm%d", pid);
    snprintf(ns, sizeof(ns), "kovanet%d", pid);
    snprintf(veth_h, sizeof(veth_h), "kvth%d", pid);
    snprintf(veth_n, sizeof(veth_n), "kvtn%d", pid);
    snprintf(tap_stray, sizeof(tap_stray), "taps%d", pid);
    snprintf(tap_kept, sizeof(tap_kept), "tapk%d", pid);
    snprintf(tap_free, sizeof(tap_free), "tapf%d", pid);
    snprintf(run_dir, sizeof(run_dir), "/tmp/kova-nethost.%d", pid);
    atexit(cleanup);
    signal(SIGALRM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    alarm(75);
    if (mkdir(run_dir, 0755) < 0) {
        perror(run_dir);
        return 1;
    }
    chmod(run_dir, 0755);
    FILE *f = fopen(kt_path(run_dir, "udhcpc.sh"), "w");
    CHECK(f != NULL);
    if (f) {
        fputs("#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n"
              "echo \"KOVA_IP=$ip\"; echo \"KOVA_ROUTER=$router\"; echo \"KOVA_DNS=$dns\"\n"
              "echo \"KOVA_MTU=$mtu\"; echo \"KOVA_HOSTNAME=$hostname\"; "
              "echo \"KOVA_SUBNET=$subnet\"\n",
              f);
        fclose(f);
        chmod(kt_path(run_dir, "udhcpc.sh"), 0755);
    }

    /* 10.{240..255}.x.0/24 from the pid: parallel runs on one machine get their own */
    unsigned hi = 240 + (unsigned)pid % 16, mid = ((unsigned)pid / 16) % 84 * 3;
    char cidr_a[32], cidr_b[32], cidr_m[32], gw_a[16], gw_b[16];
    snprintf(cidr_a, sizeof(cidr_a), "10.%u.%u.0/24", hi, mid);
    snprintf(cidr_b, sizeof(cidr_b), "10.%u.%u.0/24", hi, mid + 1);
    snprintf(cidr_m, sizeof(cidr_m), "10.%u.%u.0/24", hi, mid + 2);
    snprintf(gw_a, sizeof(gw_a), "10.%u.%u.1", hi, mid);
    snprintf(gw_b, sizeof(gw_b), "10.%u.%u.254", hi, mid + 1);

    struct kova_net_def defs[2];
    char err[512];
    CHECK(kova_net_def_init(&defs[0], "test-a", err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[0], "cidr", cidr_a, err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[0], "bridge", br_a, err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[0], "dns", "192.0.2.53, 198.51.100.53", err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[0], "mtu", "1400", err, sizeof(err)) == 0);
    CHECK(kova_net_def_finish(&defs[0], err, sizeof(err)) == 0);
    CHECK(kova_net_def_init(&defs[1], "test-b", err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[1], "cidr", cidr_b, err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[1], "gateway", gw_b, err, sizeof(err)) == 0);
    CHECK(kova_net_def_set(&defs[1], "bridge", br_b, err, sizeof(err)) == 0);
    CHECK(kova_net_def_finish(&defs[1], err, sizeof(err)) == 0);
    const char *ua = defs[0].uuid, *ub = defs[1].uuid;
    struct kova_net_host_config cfg = {.defs = defs, .ndefs = 2, .run_dir = run_dir};
    if (failures)
        return kt_finish("network.host");

    /* ---- start: bridges up with the gateway, dnsmasq as nobody ---- */
    struct kova_net_host *h = NULL;
    int r = kova_net_host_start(&cfg, &h, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "host start: %s\n", err);
    CHECK(r == 0);
    if (r < 0)
        return kt_finish("network.host");
    size_t nd;
    CHECK(kova_net_host_defs(h, &nd) && nd == 2);
    CHECK(kova_net_host_find(h, "test-b") && !strcmp(kova_net_host_find(h, ua)->name, "test-a"));
    CHECK(!kova_net_host_find(h, "nope"));
    char buf[65536];
    for (int i = 0; i < 2; i++) {
        const char *br = i ? br_b : br_a;
        CHECK(link_exists(br) &&
              access(kt_path(kt_path("/sys/class/net", br), "bridge"), F_OK) == 0);
        CHECK((sys_long(br, "flags") & 1) == 1); /* IFF_UP */
        CHECK(sys_long(br, "mtu") == (i ? 1500 : 1400));
        sh_out(buf, sizeof(buf), "ip -j addr show dev %s", br);
        char want[96];
        snprintf(want, sizeof(want), "\"local\":\"%s\",\"prefixlen\":24", i ? gw_b : gw_a);
        CHECK(strstr(buf, want) != NULL);
        int dpid = kova_net_host_dnsmasq_pid(h, i ? ub : ua);
        CHECK(dpid > 0 && alive(dpid));
        char status[4096];
        snprintf(want, sizeof(want), "/proc/%d/status", dpid);
        read_file(want, status, sizeof(status));
        CHECK(strstr(status, "\nUid:\t65534\t") != NULL); /* dropped to nobody */
    }
    CHECK(kova_net_host_dnsmasq_pid(h, "nope") == 0);

    /* ---- taps ---- */
    char tap[KOVA_NET_IFNAME], uuid[KOVA_UUID_STRLEN + 1], m[16];
    kova_uuid(uuid);
    kova_net_port_tap(uuid, tap);
    int fd = kova_net_tap_open(tap, br_a, 1400, err, sizeof(err));
    if (fd < 0)
        fprintf(stderr, "tap open: %s\n", err);
    CHECK(fd >= 0);
    CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
    master_of(tap, m);
    CHECK(!strcmp(m, br_a));
    CHECK((sys_long(tap, "flags") & 1) == 1 && sys_long(tap, "mtu") == 1400);
    CHECK(sys_long(tap, "tun_flags") == 0x5002); /* IFF_TAP | IFF_NO_PI | IFF_VNET_HDR */
    CHECK(kova_net_tap_open(tap, br_a, 1400, err, sizeof(err)) == -EBUSY);
    CHECK(link_exists(tap)); /* the failed open left it alone */
    if (fd >= 0)
        close(fd);
    for (int t = 0; t < 100 && link_exists(tap); t++)
        sleep_ms(10);
    CHECK(!link_exists(tap));
    err[0] = '\0';
    CHECK(kova_net_tap_open(tap, "kvtnobridge", 1500, err, sizeof(err)) == -ENODEV && err[0]);
    CHECK(kova_net_tap_open(tap, "lo", 1500, err, sizeof(err)) == -EINVAL);
    CHECK(!link_exists(tap));

    /* ---- leases: hosts files, SIGHUP ---- */
    char a10[16], a11[16], b20[16];
    snprintf(a10, sizeof(a10), "10.%u.%u.10", hi, mid);
    snprintf(a11, sizeof(a11), "10.%u.%u.11", hi, mid);
    snprintf(b20, sizeof(b20), "10.%u.%u.20", hi, mid + 1);
    const char *mac1 = "fa:16:3e:00:00:01", *mac2 = "fa:16:3e:00:00:02",
               *mac3 = "fa:16:3e:00:00:03", *mac4 = "fa:16:3e:00:00:04";
    struct kova_net_lease l[6] = {
        {.network_uuid = ua},
        {.network_uuid = ub},
        {.network_uuid = ua},
        {.network_uuid = "00000000-0000-4000-8000-000000000000"}, /* unknown: ignored */
        {.network_uuid = ua},                                     /* bad: left out */
    };
    snprintf(l[0].mac, sizeof(l[0].mac), "%s", mac1);
    CHECK(kova_net_ip_parse(a11, &l[0].ip) == 0);
    snprintf(l[0].hostname, sizeof(l[0].hostname), "web_1.example");
    snprintf(l[1].mac, sizeof(l[1].mac), "%s", mac3);
    CHECK(kova_net_ip_parse(b20, &l[1].ip) == 0);
    snprintf(l[2].mac, sizeof(l[2].mac), "%s", mac2);
    CHECK(kova_net_ip_parse(a10, &l[2].ip) == 0);
    snprintf(l[2].hostname, sizeof(l[2].hostname), "3600"); /* would read as a lease time */
    snprintf(l[3].mac, sizeof(l[3].mac), "fa:16:3e:00:00:09");
    l[3].ip = l[0].ip;
    snprintf(l[4].mac, sizeof(l[4].mac), "fa:16:3e:00:00:0x");
    l[4].ip = l[0].ip + 50;
    int pa = kova_net_host_dnsmasq_pid(h, ua), pb = kova_net_host_dnsmasq_pid(h, ub);
    char hosts_a[128], hosts_b[128], log_a[128], log_b[128], want[256];
    snprintf(hosts_a, sizeof(hosts_a), "%s/%s.hosts", run_dir, ua);
    snprintf(hosts_b, sizeof(hosts_b), "%s/%s.hosts", run_dir, ub);
    snprintf(log_a, sizeof(log_a), "%s/%s.log", run_dir, ua);
    snprintf(log_b, sizeof(log_b), "%s/%s.log", run_dir, ub);
    CHECK(kova_net_host_set_leases(h, l, 5) == 0);
    read_file(hosts_a, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%s,%s\n%s,%s,web-1-example\n", mac2, a10, mac1, a11);
    if (strcmp(buf, want))
        fprintf(stderr, "hosts file A:\n%s\nwanted:\n%s\n", buf, want);
    CHECK(!strcmp(buf, want));
    read_file(hosts_b, buf, sizeof(buf));
    snprintf(want, sizeof(want), "%s,%s\n", mac3, b20);
    CHECK(!strcmp(buf, want));
    struct stat st;
    CHECK(stat(hosts_a, &st) == 0 && (st.st_mode & 0777) == 0644);
    /* dnsmasq re-read it (SIGHUP; the same process) */
    snprintf(want, sizeof(want), "read %s", hosts_a);
    for (int t = 0; t < 100 && count_lines(log_a, want) < 2; t++)
        sleep_ms(20);
    CHECK(count_lines(log_a, want) == 2); /* at start, and after SIGHUP */
    CHECK(kova_net_host_dnsmasq_pid(h, ua) == pa && kova_net_host_dnsmasq_pid(h, ub) == pb);
    /* the same leases again, in another order: no rewrite, no SIGHUP */
    struct kova_net_lease l2[3] = {l[1], l[2], l[0]};
    CHECK(kova_net_host_set_leases(h, l2, 3) == 0);
    sleep_ms(200);
    CHECK(count_lines(log_a, want) == 2);

    /* ---- DHCP for real, through a veth into a namespace ---- */
    CHECK(sh("ip netns add %s && ip link add %s type veth peer name %s && "
             "ip link set %s netns %s && ip link set %s master %s up",
             ns, veth_h, veth_n, veth_n, ns, veth_h, br_a) == 0);
    struct got g;
    char dns_want[64];
    snprintf(dns_want, sizeof(dns_want), "192.0.2.53 198.51.100.53");
    CHECK(dhcp(mac1, &g) == 0);
    CHECK(!strcmp(g.ip, a11) && !strcmp(g.router, gw_a) && !strcmp(g.subnet, "255.255.255.0"));
    CHECK(!strncmp(g.dns, dns_want, strlen(dns_want)));
    CHECK(!strcmp(g.mtu, "1400") && !strcmp(g.hostname, "web-1-example"));
    CHECK(dhcp(mac2, &g) == 0 && !strcmp(g.ip, a10) && !g.hostname[0]);
    CHECK(dhcp(mac4, &g) == -1); /* no lease: nothing (static only) */
    CHECK(dhcp(mac3, &g) == -1); /* network B's lease, on bridge A */

    /* ---- SIGKILL: the supervisor restarts dnsmasq, DHCP works again ---- */
    CHECK(kill(pa, SIGKILL) == 0);
    int pa2 = wait_new_pid(h, ua, pa, 4000);
    CHECK(pa2 > 0 && alive(pa2));
    CHECK(kova_net_host_dnsmasq_pid(h, ub) == pb);
    CHECK(dhcp(mac1, &g) == 0 && !strcmp(g.ip, a11));

    /* ---- a lease removed and its address given to another MAC: mac4 gets it although
     * dnsmasq had leased it to mac2 ---- */
    snprintf(l[2].mac, sizeof(l[2].mac), "%s", mac4);
    l[2].hostname[0] = '\0';
    CHECK(kova_net_host_set_leases(h, l, 3) == 0);
    int pa3 = wait_new_pid(h, ua, pa2, 2000);
    CHECK(pa3 > 0);
    CHECK(dhcp(mac4, &g) == 0 && !strcmp(g.ip, a10));
    CHECK(dhcp(mac2, &g) == -1);
    if (failures || getenv("KOVA_TEST_VERBOSE")) {
        read_file(log_a, buf, sizeof(buf));
        printf("---- %s:\n%s----\n", log_a, buf);
    }

    /* ---- sweep: a stray tap on our bridge goes; kept ones, an open one and one on no bridge
     * stay ---- */
    CHECK(sh("ip tuntap add %s mode tap && ip link set %s master %s && "
             "ip tuntap add %s mode tap && ip link set %s master %s && ip tuntap add %s mode tap",
             tap_stray, tap_stray, br_b, tap_kept, tap_kept, br_a, tap_free) == 0);
    fd = kova_net_tap_open(tap, br_a, 1400, err, sizeof(err));
    CHECK(fd >= 0);
    const char *keep[] = {tap_kept, tap};
    CHECK(kova_net_host_sweep_taps(h, keep, 2) == 1);
    CHECK(!link_exists(tap_stray) && link_exists(tap_kept) && link_exists(tap_free));
    CHECK(link_exists(tap) && link_exists(veth_h));
    CHECK(kova_net_host_sweep_taps(h, keep, 2) == 0);
    /* the kept one was persistent: opening it makes it go with its fd */
    int fd2 = kova_net_tap_open(tap_kept, br_a, 1400, err, sizeof(err));
    CHECK(fd2 >= 0);
    CHECK(sys_long(tap_kept, "tun_flags") == 0x5002);
    if (fd2 >= 0)
        close(fd2);
    for (int t = 0; t < 100 && link_exists(tap_kept); t++)
        sleep_ms(10);
    CHECK(!link_exists(tap_kept));
    if (fd >= 0)
        close(fd);

    /* ---- stop: dnsmasq gone, bridges stay ---- */
    pa = kova_net_host_dnsmasq_pid(h, ua);
    pb = kova_net_host_dnsmasq_pid(h, ub);
    kova_net_host_stop(h);
    CHECK(!alive(pa) && !alive(pb));
    CHECK(kill(pa, 0) < 0 && errno == ESRCH); /* reaped */
    CHECK(link_exists(br_a) && link_exists(br_b));
    CHECK(dnsmasqs(run_dir, false) == 0);

    /* ---- a dnsmasq left by a previous run (its agent died without stopping it) is stopped
     * before the new one starts ---- */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t child = fork();
    if (child == 0) {
        struct kova_net_host *hc;
        int orphan = 0;
        if (kova_net_host_start(&cfg, &hc, err, sizeof(err)) == 0)
            orphan = kova_net_host_dnsmasq_pid(hc, ua);
        if (write(pfd[1], &orphan, sizeof(orphan)) < 0) {
        }
        _exit(0); /* no kova_net_host_stop */
    }
    close(pfd[1]);
    int orphan = 0;
    CHECK(read(pfd[0], &orphan, sizeof(orphan)) == sizeof(orphan));
    close(pfd[0]);
    waitpid(child, NULL, 0);
    CHECK(orphan > 0 && alive(orphan));
    snprintf(want, sizeof(want), "--interface=%s", br_a);
    CHECK(dnsmasqs(want, false) == 1);
    h = NULL;
    r = kova_net_host_start(&cfg, &h, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "host restart: %s\n", err);
    CHECK(r == 0);
    CHECK(!alive(orphan));
    CHECK(dnsmasqs(want, false) == 1);
    if (h) {
        CHECK(kova_net_host_dnsmasq_pid(h, ua) != orphan);
        /* the new host starts with no leases (the agent sets them): mac1 gets nothing now */
        CHECK(dhcp(mac1, &g) == -1);
        CHECK(kova_net_host_set_leases(h, l, 3) == 0);
        CHECK(dhcp(mac1, &g) == 0 && !strcmp(g.ip, a11));
    }
    kova_net_host_stop(h);
    CHECK(dnsmasqs(run_dir, false) == 0);

    /* ---- failures leave nothing running ---- */
    cfg.dnsmasq = "/bin/false";
    CHECK(kova_net_host_start(&cfg, &h, err, sizeof(err)) == -EIO);
    printf("expected failure: %s\n", err);
    cfg.dnsmasq = NULL;
    struct kova_net_def bad = defs[1];
    snprintf(bad.bridge, sizeof(bad.bridge), "%s", veth_h); /* not a bridge */
    struct kova_net_host_config cfg2 = {.defs = &bad, .ndefs = 1, .run_dir = run_dir};
    CHECK(kova_net_host_start(&cfg2, &h, err, sizeof(err)) == -EEXIST);
    printf("expected failure: %s\n", err);
    CHECK(dnsmasqs(run_dir, false) == 0);

    /* ---- masquerade, in a namespace of its own ---- */
    child = fork();
    if (child == 0)
        _exit(masquerade_child(cidr_m));
    int cst = 0;
    waitpid(child, &cst, 0);
    CHECK(WIFEXITED(cst) && WEXITSTATUS(cst) == 0);

    cleanup();
    CHECK(!link_exists(br_a) && !link_exists(br_b) && !link_exists(veth_h));
    return kt_finish("network.host");
}

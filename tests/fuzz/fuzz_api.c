/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the REST API's request handling, from the HTTP request to the reply. Each
 * input is one request, served in-process by the API's own libmicrohttpd callbacks (routing,
 * path normalisation, microversion negotiation, noauth2, policy, the handlers' body, query and
 * path id parsing and validation) over a real database, compute manager and fake driver
 * (compute/fake_driver.c: nothing runs). There is no listening socket: kova_api_start()'s
 * listeners are made without one (MHD_USE_NO_LISTEN_SOCKET, driven by this thread), and each
 * request arrives over a socketpair handed to MHD_add_connection(). http.c is compiled into this
 * file for that: its MHD_start_daemon() calls come here.
 *
 * Checks besides ASan/UBSan (a crash): a 5xx reply (the API promises 4xx for hostile input)
 * and a reply with a JSON Content-Type that does not parse are findings: counted by kind and
 * summed up at exit, the first input of each kind saved under $KOVA_FUZZ_FINDINGS when set; with
 * KOVA_FUZZ_STRICT=1 a finding aborts (libFuzzer keeps the input). sb_strn() must write JSON
 * strings that read back as the same bytes (else a crash).
 * The database is state: on a crash, the successful changes made since the state was last made
 * are written to fuzz-api-state-<pid> in the current directory (for a finding: <input>.state);
 * KOVA_FUZZ_PRELUDE=that file replays them first, so that
 * `KOVA_FUZZ_PRELUDE=fuzz-api-state-... fuzz-api crash-...` reproduces it.
 *
 * Input (text):
 *   <c|i> <METHOD> <target>\n      c: the compute API, i: the image API (Glance)
 *   <Name>: <value>\n ...           headers (Content-Length, Transfer-Encoding and Connection
 *                                   are the harness's own)
 *   \n
 *   <body>
 * The database starts with the default flavors 1-5 and a private one, "priv", with extra specs
 * on 1, images IMG1 (public, active), IMG2 (p2, queued),
 * servers S1 and S2 (user u1, project p1; S2 stopped), S3 (p2), keypair kp1 of u1; it is made
 * again after every 64 successful changes.
 */
#include <microhttpd.h>

struct MHD_Daemon *fuzz_start_daemon(unsigned int flags, uint16_t port,
                                     MHD_AcceptPolicyCallback apc, void *apc_cls,
                                     MHD_AccessHandlerCallback dh, void *dh_cls, ...);
#define MHD_start_daemon fuzz_start_daemon
#include "../../api/http.c"
#undef MHD_start_daemon

#include "kova/driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMG1 "aaaaaaaa-0000-4000-8000-000000000001"
#define IMG2 "aaaaaaaa-0000-4000-8000-000000000002"
#define S1   "11111111-1111-4111-8111-111111111111"
#define S2   "22222222-2222-4222-8222-222222222222"
#define S3   "33333333-3333-4333-8333-333333333333"

#define MAX_CHANGES    64     /* successful writes before the database is made again */
#define MAX_ROUNDS     20000  /* MHD_run calls one request may take */
#define MAX_REQUEST    262144 /* bytes of one input (the request is composed from it) */
#define MAX_FINDINGS   64
#define ROUNDTRIP_MAX  4096 /* bytes of the sb_strn() round trip */
#define FINDING_TEXT   100
#define FUZZ_HOST_NAME "fuzzhost"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_death(void);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_api: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    on_death();
    abort();
}

/* ---- the in-process listeners ---- */

static struct MHD_Daemon *daemons[3]; /* by service: SVC_COMPUTE, SVC_IMAGE */

#define MAX_OPTIONS 32

/* listen_on()'s MHD_start_daemon(): the same handler and options, but no socket to listen on
 * and no threads (the options about those are left out; the rest are passed on as they came). */
struct MHD_Daemon *fuzz_start_daemon(unsigned int flags, uint16_t port,
                                     MHD_AcceptPolicyCallback apc, void *apc_cls,
                                     MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    struct MHD_OptionItem opts[MAX_OPTIONS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, dh_cls);
    for (int opt; (opt = va_arg(ap, int)) != MHD_OPTION_END;) {
        if (n == MAX_OPTIONS)
            fail("more than %d MHD options", MAX_OPTIONS);
        struct MHD_OptionItem *o = &opts[n];
        *o = (struct MHD_OptionItem){(enum MHD_OPTION)opt, 0, NULL};
        switch (opt) {
        case MHD_OPTION_CONNECTION_MEMORY_LIMIT:
        case MHD_OPTION_CONNECTION_MEMORY_INCREMENT:
        case MHD_OPTION_THREAD_STACK_SIZE:
            o->value = (intptr_t)va_arg(ap, size_t);
            break;
        case MHD_OPTION_CONNECTION_LIMIT:
        case MHD_OPTION_CONNECTION_TIMEOUT:
        case MHD_OPTION_PER_IP_CONNECTION_LIMIT:
        case MHD_OPTION_NONCE_NC_SIZE:
            o->value = (intptr_t)va_arg(ap, unsigned int);
            break;
        case MHD_OPTION_STRICT_FOR_CLIENT:
            o->value = (intptr_t)va_arg(ap, int);
            break;
        case MHD_OPTION_NOTIFY_COMPLETED:
        case MHD_OPTION_NOTIFY_CONNECTION:
        case MHD_OPTION_URI_LOG_CALLBACK:
        case MHD_OPTION_EXTERNAL_LOGGER:
        case MHD_OPTION_UNESCAPE_CALLBACK:
            o->value = (intptr_t)va_arg(ap, void (*)(void));
            o->ptr_value = va_arg(ap, void *);
            break;
        /* about the listening socket and the threads: not used here */
        case MHD_OPTION_SOCK_ADDR:
            (void)va_arg(ap, const struct sockaddr *);
            continue;
        case MHD_OPTION_THREAD_POOL_SIZE:
        case MHD_OPTION_LISTEN_BACKLOG_SIZE:
        case MHD_OPTION_TCP_FASTOPEN_QUEUE_SIZE:
        case MHD_OPTION_LISTENING_ADDRESS_REUSE:
            (void)va_arg(ap, unsigned int);
            continue;
        default:
            fail("listen_on passes MHD option %d: teach fuzz_start_daemon about it", opt);
        }
        n++;
    }
    va_end(ap);
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    struct svc_cls *svc = dh_cls;
    if (svc->service != SVC_COMPUTE && svc->service != SVC_IMAGE)
        fail("unknown service %d", svc->service);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, dh, dh_cls,
                                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    daemons[svc->service] = d;
    return d;
}

/* ---- one HTTP exchange over a socketpair ---- */

struct reply {
    char *buf;
    size_t len, cap;
    int status;         /* 0: no status line */
    const char *body;   /* into buf */
    size_t body_len;    /* up to the end of what came */
    bool json, encoded; /* Content-Type application/json; Content-Encoding set */
};

static void reply_append(struct reply *rp, const char *p, size_t n)
{
    if (rp->len + n + 1 > rp->cap) {
        size_t cap = rp->cap ? rp->cap : 65536;
        while (cap < rp->len + n + 1)
            cap *= 2;
        char *nb = realloc(rp->buf, cap);
        if (!nb)
            fail("out of memory");
        rp->buf = nb;
        rp->cap = cap;
    }
    memcpy(rp->buf + rp->len, p, n);
    rp->len += n;
    rp->buf[rp->len] = 0;
}

static bool header_is(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l && line[l] == ':' && strncasecmp(line, name, l) == 0;
}

/* Status line and the headers that matter, past any 1xx interim replies. */
static void reply_parse(struct reply *rp)
{
    const char *p = rp->buf, *end = rp->buf + rp->len;
    for (;;) {
        const char *hend = rp->len ? strstr(p, "\r\n\r\n") : NULL;
        if (!hend || end - p < 12 || strncmp(p, "HTTP/1.", 7) != 0)
            return;
        int st = atoi(p + 9);
        if (st >= 100 && st < 200) {
            p = hend + 4;
            continue;
        }
        rp->status = st;
        size_t clen = SIZE_MAX;
        for (const char *l = strstr(p, "\r\n") + 2; l < hend;) {
            const char *le = strstr(l, "\r\n");
            size_t n = (size_t)(le - l);
            if (header_is(l, n, "Content-Type"))
                rp->json = n >= 30 && strncasecmp(l + 14, "application/json", 16) == 0;
            if (header_is(l, n, "Content-Encoding") || header_is(l, n, "Transfer-Encoding"))
                rp->encoded = true;
            if (header_is(l, n, "Content-Length"))
                clen = strtoull(l + 15, NULL, 10);
            l = le + 2;
        }
        rp->body = hend + 4;
        rp->body_len = (size_t)(end - rp->body);
        if (clen < rp->body_len)
            rp->body_len = clen; /* what follows is another reply */
        return;
    }
}

static unsigned daemon_connections(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return i ? i->num_connections : 0;
}

/* Sends req to the service's listener and collects the reply until the server closes. */
static void exchange(int service, const char *req, size_t len, struct reply *rp)
{
    struct MHD_Daemon *d = daemons[service];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair: %s", strerror(errno));
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
        fail("O_NONBLOCK: %s", strerror(errno));
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(d, sv[1], (struct sockaddr *)&peer, sizeof(peer)) != MHD_YES)
        fail("MHD_add_connection failed");
    size_t sent = 0;
    rp->len = 0;
    bool eof = false;
    for (int round = 0; round < MAX_ROUNDS && !eof; round++) {
        if (sent < len) {
            ssize_t n = write(sv[0], req + sent, len - sent);
            if (n > 0)
                sent += (size_t)n;
        }
        MHD_run(d);
        char buf[65536];
        for (;;) {
            ssize_t n = read(sv[0], buf, sizeof(buf));
            if (n > 0) {
                reply_append(rp, buf, (size_t)n);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                eof = true;
            break;
        }
    }
    close(sv[0]);
    /* MHD sees the closed peer and completes the request (req_free) */
    for (int round = 0; daemon_connections(d) && round < MAX_ROUNDS; round++)
        MHD_run(d);
    if (daemon_connections(d))
        fail("a connection outlived its exchange");
    if (!eof)
        fail("no reply within %d rounds", MAX_ROUNDS);
    rp->status = 0;
    rp->body = NULL;
    rp->body_len = 0;
    rp->json = rp->encoded = false;
    if (rp->len)
        reply_parse(rp);
}

/* ---- the state: database, compute manager, fake driver, API ---- */

static char state_dir[256], db_path[300], images_dir[300];
static struct kova_db *db;
static struct kova_fake_state fake;
static struct kova_driver *driver;
static struct kova_compute *compute;
static struct kova_api *api;
static struct reply rp;
static unsigned changes;
/* The inputs that made the changes since state_up(), for fuzz-api-state-<pid>. */
static struct input {
    uint8_t *p;
    size_t n;
} history[MAX_CHANGES];
static bool replaying;
static bool trace; /* KOVA_FUZZ_TRACE: each request and its reply, to check what a seed does */

/* Slow work (web-download import) is refused: it would reach the network. */
static int no_submit(void *opaque, kova_task_fn fn, void *arg)
{
    return -EAGAIN;
}

static void remove_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char p[600];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

/* One request for the set-up: status must be want. */
static void seed(int service, const char *method, const char *target, const char *token,
                 const char *ctype, const char *body, int want)
{
    char req[8192];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: %s\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, target, token, ctype, bl, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof(req))
        fail("seed request too long");
    exchange(service, req, (size_t)n, &rp);
    if (rp.status != want)
        fail("set-up %s %s: %d, not %d: %.300s", method, target, rp.status, want,
             rp.len ? rp.buf : "(nothing)");
}

static void seed_server(const char *id, const char *name, const char *project, const char *user)
{
    static const struct kova_db_meta meta[] = {{"role", "web"}, {"tier", "1"}};
    struct kova_db_server_new s = {
        .name = name,
        .project_id = project,
        .user_id = user,
        .image_ref = IMG1,
        .flavor_id = "1",
        .vcpus = 1,
        .ram = 512,
        .disk = 1,
        .key_name = strcmp(user, "u1") ? NULL : "kp1",
        .availability_zone = "nova",
        .config_drive = "",
        .access_ipv4 = "",
        .access_ipv6 = "",
        .disk_config = "MANUAL",
        .host = FUZZ_HOST_NAME,
        .metadata = meta,
        .nmeta = 2,
        .request_id = "req-fuzz-seed",
    };
    sqlite3 *conn = kova_db_acquire(db);
    const char *ids[] = {id};
    int e = kova_db_server_create(conn, &s, ids, 1);
    kova_db_release(db, conn);
    if (e < 0)
        fail("kova_db_server_create: %s", strerror(-e));
    /* the build runs inline (no workers) on the fake driver */
    if ((e = kova_compute_submit(compute, id, KOVA_OP_BUILD)) < 0)
        fail("kova_compute_submit: %s", strerror(-e));
}

static void state_up(void)
{
    static const char json[] = "application/json";
    int e;
    for (unsigned i = 0; i < changes; i++)
        free(history[i].p);
    changes = 0;
    remove_files(images_dir);
    char p[400];
    unlink(db_path);
    snprintf(p, sizeof(p), "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db_path);
    unlink(p);
    if ((e = kova_db_open(db_path, 2, &db)) < 0)
        fail("kova_db_open: %s", strerror(-e));
    memset(&fake, 0, sizeof(fake));
    fake.next_pid = 1000;
    struct kova_compute_config cc = {.db = db}; /* no workers: tasks run inline */
    if ((e = kova_compute_new(&cc, &compute)) < 0 ||
        (e = kova_fake_driver_new(&fake, kova_compute_instance_exited, compute, &driver)) < 0 ||
        (e = kova_compute_start(compute, driver)) < 0)
        fail("compute manager: %s", strerror(-e));
    struct kova_api_config ac = {
        .listen_host = "127.0.0.1",
        .listen_port = 8774,
        .image_host = "127.0.0.1",
        .image_port = 9292,
        .state_dir = state_dir,
        .auth_strategy = "noauth2",
        .host_name = FUZZ_HOST_NAME,
        .availability_zone = "nova",
        .threads = 1,
        .max_body = 114688,
        .max_image_size = 1 << 20,
        .max_limit = 1000,
        .quota_instances = 10,
        .quota_cores = 20,
        .quota_ram = 51200,
        .quota_key_pairs = 100,
        .quota_metadata_items = 128,
        .compute = compute,
        .submit = no_submit,
    };
    if ((e = kova_api_start(&ac, db, &api)) < 0)
        fail("kova_api_start: %s", strerror(-e));

    seed(SVC_COMPUTE, "POST", "/v2.1/flavors", "admin:admin", json,
         "{\"flavor\": {\"name\": \"private\", \"id\": \"priv\", \"ram\": 256, "
         "\"vcpus\": 1, \"disk\": 0, \"os-flavor-access:is_public\": false}}",
         200);
    seed(SVC_COMPUTE, "POST", "/v2.1/flavors/1/os-extra_specs", "admin:admin", json,
         "{\"extra_specs\": {\"hw:cpu_policy\": \"shared\", \"quota:disk_read_bytes_sec\": "
         "\"1000\"}}",
         200);
    seed(SVC_IMAGE, "POST", "/v2/images", "admin:admin", json,
         "{\"id\": \"" IMG1 "\", \"name\": \"cirros\", \"disk_format\": \"raw\", "
         "\"container_format\": \"bare\", \"visibility\": \"public\", \"os_distro\": \"cirros\"}",
         201);
    seed(SVC_IMAGE, "PUT", "/v2/images/" IMG1 "/file", "admin:admin", "application/octet-stream",
         "a small raw disk image, as far as the API can tell", 204);
    seed(SVC_IMAGE, "POST", "/v2/images", "u2:p2", json,
         "{\"id\": \"" IMG2 "\", \"name\": \"queued\", \"visibility\": \"private\", "
         "\"tags\": [\"x\"]}",
         201);
    seed(SVC_COMPUTE, "POST", "/v2.1/os-keypairs", "u1:p1", json,
         "{\"keypair\": {\"name\": \"kp1\"}}", 200);
    seed_server(S1, "vm1", "p1", "u1");
    seed_server(S2, "vm2", "p1", "u1");
    seed_server(S3, "vm3", "p2", "u2");
    seed(SVC_COMPUTE, "POST", "/v2.1/servers/" S2 "/action", "u1:p1", json, "{\"os-stop\": null}",
         202);
}

static void state_down(void)
{
    kova_api_stop(api);
    daemons[SVC_COMPUTE] = daemons[SVC_IMAGE] = NULL;
    driver->ops->free(driver);
    kova_compute_free(compute);
    kova_db_close(db);
    api = NULL;
    driver = NULL;
    compute = NULL;
    db = NULL;
}

static void cleanup(void);

/* The changes since state_up() into path, one record each: "<length>\n<bytes>\n". */
static void write_history(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    for (unsigned i = 0; i < changes; i++) {
        fprintf(f, "%zu\n", history[i].n);
        fwrite(history[i].p, 1, history[i].n, f);
        fputc('\n', f);
    }
    fclose(f);
}

/* Before a crash: the state for the crashing input, fuzz-api-state-<pid>. */
static void save_history(void)
{
    if (!changes || replaying)
        return;
    char p[64];
    snprintf(p, sizeof(p), "fuzz-api-state-%d", (int)getpid());
    write_history(p);
    fprintf(stderr, "fuzz_api: the %u changes before this input are in %s (KOVA_FUZZ_PRELUDE)\n",
            changes, p);
}

static void replay(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail("cannot open %s: %s", path, strerror(errno));
    size_t n;
    replaying = true;
    while (fscanf(f, "%zu", &n) == 1 && fgetc(f) == '\n' && n <= MAX_REQUEST) {
        uint8_t *b = malloc(n ? n : 1);
        if (!b || fread(b, 1, n, f) != n)
            fail("%s: short record", path);
        fgetc(f);
        LLVMFuzzerTestOneInput(b, n);
        free(b);
    }
    replaying = false;
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kova_log_setup("fuzz-api", getenv("KOVA_FUZZ_LOG") ? KOVA_LOG_DEBUG : -2);
    trace = getenv("KOVA_FUZZ_TRACE") != NULL;
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(state_dir, sizeof(state_dir), "%s/kova-fuzz-api.XXXXXX", tmp);
    if (!mkdtemp(state_dir))
        fail("mkdtemp: %s", strerror(errno));
    snprintf(db_path, sizeof(db_path), "%s/state.db", state_dir);
    snprintf(images_dir, sizeof(images_dir), "%s/images", state_dir);
    atexit(cleanup);
    __sanitizer_set_death_callback(on_death);
    state_up();
    const char *prelude = getenv("KOVA_FUZZ_PRELUDE");
    if (prelude)
        replay(prelude);
    return 0;
}

/* ---- findings: 5xx replies ---- */

static struct finding {
    const char *kind;
    int status;
    char what[FINDING_TEXT];
    unsigned long count;
} findings[MAX_FINDINGS];
static unsigned nfindings;

/* The fault's message (Nova's {"<name>": {"message": ...}} or Glance's {"message": ...}). */
static void fault_text(const struct reply *r, char *out, size_t n)
{
    snprintf(out, n, "%.*s", (int)(r->body_len < 80 ? r->body_len : 80), r->body ? r->body : "");
    json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *m = json_object_get(j, "message");
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (!m)
            m = json_object_get(v, "message");
    }
    if (json_is_string(m))
        snprintf(out, n, "%s", json_string_value(m));
    json_decref(j);
}

/* A finding of kind ("5xx", "bad-json") with its description, cut at the first digit or quote
 * (ids and numbers do not make a new finding). True when it is a new one. */
static bool note_finding(const char *kind, int status, const char *text, const uint8_t *data,
                         size_t size)
{
    char what[FINDING_TEXT];
    size_t l = strcspn(text, "0123456789'\"(");
    snprintf(what, sizeof(what), "%.*s", (int)(l < sizeof(what) - 1 ? l : sizeof(what) - 1), text);
    bool fresh = false;
    unsigned i = 0;
    while (i < nfindings && (findings[i].status != status || strcmp(findings[i].kind, kind) ||
                             strcmp(findings[i].what, what)))
        i++;
    if (i == nfindings && nfindings < MAX_FINDINGS) {
        findings[i].kind = kind;
        findings[i].status = status;
        snprintf(findings[i].what, sizeof(findings[i].what), "%s", what);
        nfindings++;
        const char *dir = getenv("KOVA_FUZZ_FINDINGS");
        if (dir) {
            char p[600];
            snprintf(p, sizeof(p), "%s/%s-%d-%u", dir, kind, status, i);
            FILE *f = fopen(p, "wb");
            if (f) {
                fwrite(data, 1, size, f);
                fclose(f);
            }
            if (changes) {
                strcat(p, ".state");
                write_history(p);
            }
        }
        fprintf(stderr, "fuzz_api: new finding %s %d: %s\n", kind, status, what);
        fresh = true;
    }
    if (i < nfindings)
        findings[i].count++;
    if (getenv("KOVA_FUZZ_STRICT"))
        fail("finding %s %d: %s", kind, status, what);
    return fresh;
}

static void remove_state_dir(void)
{
    remove_files(images_dir);
    rmdir(images_dir);
    remove_files(state_dir);
    rmdir(state_dir);
}

/* At exit: the findings, then the state goes. */
static void cleanup(void)
{
    for (unsigned i = 0; i < nfindings; i++)
        fprintf(stderr, "fuzz_api: finding %s %d x%lu: %s\n", findings[i].kind, findings[i].status,
                findings[i].count, findings[i].what);
    if (api)
        state_down();
    remove_state_dir();
}

/* A crash (sanitizer report or fail()): what reproduces it is kept, the state dir goes. */
static void on_death(void)
{
    save_history();
    if (state_dir[0])
        remove_state_dir();
}

/* ---- one input ---- */

/* The harness's own headers: a fuzzed one would leave MHD waiting for a body that never comes. */
static bool own_header(const char *l, size_t n)
{
    return header_is(l, n, "Content-Length") || header_is(l, n, "Transfer-Encoding") ||
           header_is(l, n, "Connection");
}

/* The composed request is at most twice the input (a CR for each LF) and 256 bytes. */
static void put(char *out, size_t *o, const void *p, size_t n)
{
    memcpy(out + *o, p, n);
    *o += n;
}

/* sb_strn() must write a JSON string that reads back as the same bytes (for valid UTF-8). */
static void check_roundtrip(const char *s, size_t n)
{
    json_t *orig = json_stringn(s, n);
    if (!orig)
        return; /* not UTF-8: the API never renders such text from a parsed body */
    struct sbuf b = {0};
    sb_strn(&b, s, n);
    json_error_t err;
    json_t *back = b.p ? json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err) : NULL;
    if (!back || !json_equal(orig, back))
        fail("sb_strn wrote %.200s, which does not read back (%s)", b.p ? b.p : "(nothing)",
             back ? "differs" : err.text);
    json_decref(back);
    json_decref(orig);
    free(b.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char req[2 * MAX_REQUEST];
    const char *in = (const char *)data, *end = in + size;
    const char *nl = memchr(in, '\n', size);
    if (size < 4 || size > MAX_REQUEST || !nl || (in[0] != 'c' && in[0] != 'i') || in[1] != ' ')
        return 0;
    int service = in[0] == 'c' ? SVC_COMPUTE : SVC_IMAGE;
    const char *line = in + 2;
    size_t o = 0;
    size_t ll = (size_t)(nl - line);
    if (ll && line[ll - 1] == '\r')
        ll--;
    put(req, &o, line, ll);
    put(req, &o, " HTTP/1.1\r\n", 11);
    bool host = false;
    const char *p = nl + 1;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n == 0) {
            p = e < end ? e + 1 : end;
            break;
        }
        if (!own_header(p, n)) {
            host |= header_is(p, n, "Host");
            put(req, &o, p, n);
            put(req, &o, "\r\n", 2);
        }
        if (header_is(p, n, "Accept-Encoding")) {
            static char v[MAX_REQUEST];
            memcpy(v, p + 16, n - 16);
            v[n - 16] = 0;
            accepts_gzip(v);
        }
        p = e < end ? e + 1 : end;
    }
    size_t body = (size_t)(end - p);
    if (body <= ROUNDTRIP_MAX)
        check_roundtrip(p, body);
    char h[128];
    int hl = snprintf(h, sizeof(h), "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      host ? "" : "Host: 127.0.0.1:8774\r\n", body);
    put(req, &o, h, (size_t)hl);
    put(req, &o, p, body);

    exchange(service, req, o, &rp);
    if (trace)
        fprintf(stderr, "%.*s -> %d %.*s\n", (int)ll, line, rp.status,
                (int)(rp.body_len < 300 ? rp.body_len : 300), rp.body ? rp.body : "");
    if (rp.status >= 500) {
        char what[FINDING_TEXT];
        fault_text(&rp, what, sizeof(what));
        /* the one 5xx this set-up makes on purpose: slow work is refused (no_submit) */
        if (rp.status != 500 || strcmp(what, "Cannot start the import."))
            note_finding("5xx", rp.status, what, data, size);
    }
    bool head = strncmp(line, "HEAD ", 5) == 0; /* the headers of a GET, no body */
    if (rp.json && !rp.encoded && rp.body_len && !head) {
        json_error_t err;
        json_t *j = json_loadb(rp.body, rp.body_len, 0, &err);
        if (!j && note_finding("bad-json", rp.status, err.text, data, size)) {
            size_t at = (size_t)err.position < rp.body_len ? (size_t)err.position : 0;
            size_t from = at > 60 ? at - 60 : 0;
            fprintf(stderr, "fuzz_api: reply %d is not JSON: %s, near: %.120s\n", rp.status,
                    err.text, rp.body + from);
        }
        json_decref(j);
    }
    bool write = strncmp(line, "GET ", 4) && !head;
    if (write && rp.status >= 200 && rp.status < 300) {
        if (changes == MAX_CHANGES) {
            state_down();
            state_up();
        } else {
            history[changes].p = malloc(size ? size : 1);
            if (!history[changes].p)
                fail("out of memory");
            memcpy(history[changes].p, data, size);
            history[changes++].n = size;
        }
    }
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-fake-vmm: a stand-in for kova-vmm for the agent's lifecycle tests without KVM
 * (tests/api/test_lifecycle.py installs it as ".../kova-vmm" and starts the agent with --vmm).
 * It speaks the control protocol through the same server code as kova-vmm (kova/vmm_control.h)
 * and answers status, pause, resume, powerdown and quit; it runs no guest.
 *
 * It takes kova-vmm's options and uses --console-log, --control-socket and --cmdline. Its
 * behaviour comes from the kernel command line (the image's os_command_line):
 *   fake.fail_from=N        refuse the N-th boot and every later one (exit 1); boots are counted
 *                           as "fake-vmm boot" lines in the console log, one written per start
 *   fake.CMD=vanish|refuse  for command CMD: exit at once without a reply, or answer an error
 * powerdown and quit answer, remove the socket and exit 0.
 */
#include "kova/vmm_control.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fake {
    const char *cmdline;
    bool paused;
    bool exit_after_reply;
};

/* The value of fake.<name>=VALUE on the command line, copied to out ("" when absent). */
static void flag(const char *cmdline, const char *name, char *out, size_t len)
{
    char key[64];
    snprintf(key, sizeof(key), "fake.%s=", name);
    out[0] = '\0';
    for (const char *p = cmdline; p && *p;) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w > strlen(key) && !strncmp(p, key, strlen(key)))
            snprintf(out, len, "%.*s", (int)(w - strlen(key)), p + strlen(key));
        p += w;
    }
}

static json_t *reply(bool ok, const char *state, const char *error)
{
    json_t *r = json_pack("{s:b}", "ok", ok);
    if (state)
        json_object_set_new(r, "state", json_string(state));
    if (error)
        json_object_set_new(r, "error", json_string(error));
    return r;
}

static json_t *handle(void *opaque, const char *cmd, json_t *req)
{
    (void)req;
    struct fake *f = opaque;
    char how[32];
    flag(f->cmdline, cmd, how, sizeof(how));
    if (!strcmp(how, "vanish"))
        _exit(0);
    if (!strcmp(how, "refuse"))
        return reply(false, NULL, "refused");
    if (!strcmp(cmd, KOVA_VMM_CMD_PAUSE) || !strcmp(cmd, KOVA_VMM_CMD_RESUME)) {
        f->paused = !strcmp(cmd, KOVA_VMM_CMD_PAUSE);
        return reply(true, NULL, NULL);
    }
    if (!strcmp(cmd, KOVA_VMM_CMD_STATUS) || !strcmp(cmd, KOVA_VMM_CMD_POWERDOWN) ||
        !strcmp(cmd, KOVA_VMM_CMD_QUIT)) {
        f->exit_after_reply = strcmp(cmd, KOVA_VMM_CMD_STATUS) != 0;
        json_t *r = reply(true, f->paused ? KOVA_VMM_STATE_PAUSED : KOVA_VMM_STATE_RUNNING, NULL);
        json_object_set_new(r, "protocol", json_integer(KOVA_VMM_PROTOCOL));
        return r;
    }
    return reply(false, NULL, "unknown command");
}

/* Appends this start's line to the console log; returns how many starts it now records, or -1. */
static int count_boot(const char *log)
{
    FILE *fp = fopen(log, "a+");
    if (!fp)
        return -1;
    fputs("fake-vmm boot\n", fp);
    fflush(fp);
    rewind(fp);
    char line[512];
    int boots = 0;
    while (fgets(line, sizeof(line), fp))
        boots += strstr(line, "fake-vmm boot") != NULL;
    fclose(fp);
    return boots;
}

int main(int argc, char **argv)
{
    const char *log = NULL, *sock = NULL, *cmdline = "";
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--console-log"))
            log = argv[i + 1];
        else if (!strcmp(argv[i], "--control-socket"))
            sock = argv[i + 1];
        else if (!strcmp(argv[i], "--cmdline"))
            cmdline = argv[i + 1];
    }
    if (!log || !sock) {
        fprintf(stderr, "kova-fake-vmm: --console-log and --control-socket are required\n");
        return 2;
    }
    int boots = count_boot(log);
    if (boots < 0) {
        fprintf(stderr, "kova-fake-vmm: %s: %s\n", log, strerror(errno));
        return 1;
    }
    char fail[16];
    flag(cmdline, "fail_from", fail, sizeof(fail));
    int fail_from = atoi(fail);
    if (fail_from > 0 && boots >= fail_from) {
        printf("fake-vmm: refusing boot %d\n", boots);
        return 1;
    }
    struct fake f = {.cmdline = cmdline};
    struct kova_ctl_server s;
    kova_ctl_init(&s);
    int e = kova_ctl_listen(&s, sock);
    if (e < 0) {
        fprintf(stderr, "kova-fake-vmm: %s: %s\n", sock, strerror(-e));
        return 1;
    }
    while (!f.exit_after_reply) {
        struct pollfd pfds[1 + KOVA_CTL_MAX_CLIENTS];
        size_t n = kova_ctl_pollfds(&s, pfds, 1 + KOVA_CTL_MAX_CLIENTS);
        if (poll(pfds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        kova_ctl_process(&s, pfds, n, handle, &f);
    }
    kova_ctl_close(&s);
    return 0;
}

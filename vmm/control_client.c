/* SPDX-License-Identifier: Apache-2.0 */
/* The control protocol's client (kova/vmm_control.h). */
#include "kova/vmm_control.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void copy_field(json_t *j, const char *key, char *out, size_t len)
{
    if (!out || !len)
        return;
    const char *s = json_string_value(json_object_get(j, key));
    snprintf(out, len, "%s", s ? s : "");
}

int kova_vmm_control_call(const char *path, const char *cmd, int timeout_ms, char *state,
                          size_t state_len, char *error, size_t error_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t pl = strlen(path);
    if (pl >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, pl + 1);
    json_t *req = json_pack("{s:s}", "cmd", cmd);
    char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!line)
        return -ENOMEM;
    int r, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto out;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps left room: its NUL */
    if (send(fd, line, n + 1, MSG_NOSIGNAL) != (ssize_t)(n + 1)) {
        r = -EIO;
        goto out;
    }
    char buf[4096];
    size_t len = 0;
    char *nl = NULL;
    while (!nl) {
        ssize_t k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            r = k < 0 ? -errno : -ECONNRESET;
            goto out;
        }
        len += (size_t)k;
        nl = memchr(buf, '\n', len);
        if (!nl && len >= sizeof(buf) - 1) {
            r = -EPROTO;
            goto out;
        }
    }
    json_t *j = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
    r = json_is_true(json_object_get(j, "ok")) ? 0 : -EPROTO;
    if (r == 0)
        copy_field(j, "state", state, state_len);
    else
        copy_field(j, "error", error, error_len);
    json_decref(j);
out:
    if (fd >= 0)
        close(fd);
    free(line);
    return r;
}

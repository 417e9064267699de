/* SPDX-License-Identifier: Apache-2.0 */
/* kova-vmm's COM1 (vmm/src/serial.c) writing the console log through kova_layout's rotating
 * writer, driven through the device model's port writes as a guest would (no KVM needed):
 * rotation at the limit with the backups kept, the log read back across rotations by
 * kova_console_read (os-getConsoleOutput), a device re-created on the same descriptor (a guest
 * reset) writing on into the current log, the default 2 MiB limit, and descriptors that are not
 * a file reachable by path (a pipe, an unlinked file) written plainly. */
#include "serial.h"

#include "kova/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/kova_test.h"

static char tmpdir[64];

/* The guest writes bytes to the transmit holding register (COM1 + 0). */
static void guest_puts(struct serial *s, const char *text)
{
    for (; *text; text++) {
        uint8_t b = (uint8_t)*text;
        serial_ops.write(s, 0, &b, 1);
    }
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

static char *read_all(const char *log)
{
    char *out = NULL, err[256];
    size_t len = 0;
    int r = kova_console_read(log, KOVA_CONSOLE_ALL, &out, &len, err, sizeof(err));
    CHECK(r == 0);
    return r == 0 ? out : NULL;
}

/* Lines "line NNNNN" + padding to 64 bytes; checks that `text` ends with lines first..last,
 * in order, none missing. */
static void check_tail(const char *text, int first, int last)
{
    char want[128];
    snprintf(want, sizeof(want), "line %05d ", first);
    const char *p = text ? strstr(text, want) : NULL;
    CHECK(p != NULL);
    for (int i = first; p && i <= last; i++) {
        snprintf(want, sizeof(want), "line %05d ", i);
        if (strncmp(p, want, strlen(want)) != 0) {
            fprintf(stderr, "expected %s at: %.40s\n", want, p);
            failures++;
            return;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    CHECK(p && *p == 0);
}

static void put_lines(struct serial *s, int from, int to)
{
    char line[80];
    for (int i = from; i <= to; i++) {
        snprintf(line, sizeof(line), "line %05d %052d\n", i, i);
        guest_puts(s, line);
    }
}

static void test_rotation_and_reset(void)
{
    char log[128], p[160];
    snprintf(log, sizeof(log), "%s/console.log", tmpdir);
    int fd = open_log(log);
    CHECK(fd >= 0);
    struct serial s;
    serial_init_rotating(&s, NULL, 4, fd, -1, 4096, 3);
    CHECK(s.rotating);
    /* 300 lines of 64 bytes: 19200 bytes, rotations every <= 4096 */
    put_lines(&s, 0, 299);
    serial_flush(&s);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s.%d", log, i);
        CHECK(file_size(p) > 0 && file_size(p) <= 4096);
    }
    snprintf(p, sizeof(p), "%s.3", log);
    CHECK(file_size(p) == -1);
    CHECK(file_size(log) <= 4096);
    char *all = read_all(log);
    /* 4 files of 64 whole lines (4096 / 64) at most: the newest lines, in order */
    CHECK(all && strlen(all) % 64 == 0 && strlen(all) > 3 * 4000);
    if (all)
        check_tail(all, 300 - (int)(strlen(all) / 64), 299);
    free(all);

    /* A guest reset re-creates the device on the caller's descriptor: it must be the current
     * log now, not a rotated one. */
    serial_destroy(&s);
    struct stat a, b;
    CHECK(fstat(fd, &a) == 0 && stat(log, &b) == 0 && a.st_ino == b.st_ino);
    serial_init_rotating(&s, NULL, 4, fd, -1, 4096, 3);
    off_t before = file_size(log);
    put_lines(&s, 300, 302);
    serial_flush(&s);
    CHECK(file_size(log) == before + 3 * 64);
    put_lines(&s, 303, 499);
    serial_destroy(&s);
    all = read_all(log);
    if (all)
        check_tail(all, 500 - (int)(strlen(all) / 64), 499);
    free(all);
    close(fd);
}

static void test_default_limit(void)
{
    char dir[128], log[160], p[170];
    snprintf(dir, sizeof(dir), "%s/default", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(log, sizeof(log), "%s/console.log", dir);
    int fd = open_log(log);
    struct serial s;
    serial_init(&s, NULL, 4, fd, -1);
    CHECK(s.rotating);
    /* 2 MiB + 64 KiB of lines: one rotation at KOVA_CONSOLE_ROTATE_SIZE */
    int n = (int)((KOVA_CONSOLE_ROTATE_SIZE + 65536) / 64);
    put_lines(&s, 0, n - 1);
    serial_destroy(&s);
    snprintf(p, sizeof(p), "%s.0", log);
    CHECK(file_size(p) > (off_t)KOVA_CONSOLE_ROTATE_SIZE - 80 &&
          file_size(p) <= (off_t)KOVA_CONSOLE_ROTATE_SIZE);
    CHECK(file_size(log) > 0 && file_size(log) < 70000);
    snprintf(p, sizeof(p), "%s.1", log);
    CHECK(file_size(p) == -1);
    /* os-getConsoleOutput reads the last 100 KiB across the rotation */
    char *all = read_all(log);
    CHECK(all && strlen(all) > (size_t)KOVA_CONSOLE_READ_MAX - 64 &&
          strlen(all) <= KOVA_CONSOLE_READ_MAX);
    free(all);
    close(fd);
}

static void test_plain_fds(void)
{
    /* a pipe: written as is */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    struct serial s;
    serial_init_rotating(&s, NULL, 4, pfd[1], -1, 64, 1);
    CHECK(!s.rotating);
    guest_puts(&s, "through the pipe\n");
    char buf[64] = "";
    ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
    CHECK(n == 17 && !strncmp(buf, "through the pipe\n", 17));
    serial_destroy(&s);
    close(pfd[0]);
    close(pfd[1]);

    /* a file that no longer has its path: no rotation (that would create files by name) */
    char log[128], p[160];
    snprintf(log, sizeof(log), "%s/gone.log", tmpdir);
    int fd = open_log(log);
    CHECK(unlink(log) == 0);
    serial_init_rotating(&s, NULL, 4, fd, -1, 64, 1);
    CHECK(!s.rotating);
    put_lines(&s, 0, 9);
    serial_destroy(&s);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == 640);
    snprintf(p, sizeof(p), "%s.0", log);
    CHECK(file_size(log) == -1 && file_size(p) == -1);
    close(fd);

    /* stdout copy alongside the log */
    snprintf(log, sizeof(log), "%s/both.log", tmpdir);
    fd = open_log(log);
    CHECK(pipe(pfd) == 0);
    serial_init_rotating(&s, NULL, 4, fd, pfd[1], 0, 3);
    guest_puts(&s, "to both\n");
    serial_destroy(&s);
    memset(buf, 0, sizeof(buf));
    CHECK(read(pfd[0], buf, sizeof(buf) - 1) == 8 && !strcmp(buf, "to both\n"));
    CHECK(file_size(log) == 8);
    close(pfd[0]);
    close(pfd[1]);
    close(fd);
}

int main(void)
{
    kt_mkdtemp(tmpdir, sizeof(tmpdir), "kova-serial-test");
    test_rotation_and_reset();
    test_default_limit();
    test_plain_fds();
    kt_rm_tree(tmpdir);
    return kt_finish("serial console");
}

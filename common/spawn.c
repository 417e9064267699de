/* SPDX-License-Identifier: Apache-2.0 */
/* kova_spawn (kova/common.h): a helper program forked and exec'd with a clean slate. */
#include "kova/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t kova_spawn(const char *const *argv, const char *const *envp, int out, bool new_session)
{
    int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nullfd < 0)
        return -errno;
    if (out < 0)
        out = nullfd;
    pid_t pid = fork();
    if (pid < 0) {
        pid = -errno;
        close(nullfd);
        return pid;
    }
    if (pid == 0) {
        /* the child: async-signal-safe calls only */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        static const int sigs[] = {SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGTERM};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        if (new_session)
            setsid();
        if (dup2(nullfd, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(127);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        if (envp)
            execve(argv[0], (char *const *)argv, (char *const *)envp);
        else
            execv(argv[0], (char *const *)argv);
        static const char msg[] = "kova: cannot execute the program\n";
        if (write(2, msg, sizeof(msg) - 1) < 0) {
            /* nothing left to report to */
        }
        _exit(127);
    }
    close(nullfd);
    return pid;
}

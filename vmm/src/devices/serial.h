/* SPDX-License-Identifier: Apache-2.0 */
/* 8250/16550A UART on COM1: output to the console log (appended) and optionally stdout.
 * No input: the receiver stays empty.
 * A console log that is a regular file is written through kova_common's rotating writer
 * (kova_console_writer: rotated at 2 MiB, 3 backups, as the agent's os-getConsoleOutput reads
 * it). The log is found in its directory's descriptor when the caller gives one (a sandboxed
 * VMM may not look the path up), else by the path its descriptor's /proc link names; after a
 * rotation the caller's descriptor is pointed (dup3) at the new file, so a device created on it
 * later (a guest reset rebuilds the VM) goes on writing the current log. Other descriptors (a pipe,
 * /dev/null) are written plainly. Output goes out a line at a time: at a newline, a full
 * buffer, a guest write of IER (where Linux ends each console message and transmit burst, so a
 * prompt with no newline shows at once) and serial_flush. */
#ifndef KOVA_VMM_SERIAL_H
#define KOVA_VMM_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kova/common.h"

#include "bus.h"
#include "device.h"
#include "irq.h"

struct serial {
    pthread_mutex_t lock;
    uint8_t ier, iir_fifo, lcr, mcr, scr, dll, dlm;
    int thre_pending;
    int irq_level;
    uint32_t gsi;
    const struct irq_sink *irq;
    int out_fds[2]; /* -1 when unused; out_fds[0] is the caller's console log descriptor */
    bool rotating;  /* the log goes through `log` (a dup of out_fds[0]) */
    struct kova_console_writer log;
    uint8_t buf[512];
    size_t buf_len;
};

extern const struct bus_ops serial_ops;

void serial_init(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                 int stdout_fd);
/* As serial_init, with the log's rotation size (0: KOVA_CONSOLE_ROTATE_SIZE) and backups. */
void serial_init_rotating(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                          int stdout_fd, uint64_t max_size, unsigned backups);
/* As serial_init_rotating, the log being `name` in the directory `dir_fd` (borrowed; the writer
 * keeps a duplicate). */
void serial_init_at(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                    int dir_fd, const char *name, int stdout_fd, uint64_t max_size,
                    unsigned backups);
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);

/* Its row of the device table (device.h): COM1 at PIO_COM1 on GSI_COM1, writing the
 * configuration's console_fd (in console_dir_fd as console_name, when that is set) and
 * stdout_fd. */
extern const struct device_kind serial_kind;

#endif

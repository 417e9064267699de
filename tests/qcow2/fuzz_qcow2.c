/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the input is a whole image file. Exercises header/extension parsing, table
 * loading, L1/L2/refcount lookups (reads, compressed clusters), the consistency check and the
 * write path (allocation, copy-on-write, refcount updates, flush) on hostile metadata. */
#include "kova/qcow2.h"
#include "qcow2_format.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qcow2_header h;
    char err[256];
    qcow2_parse_header(data, size, &h, err, sizeof(err));
    if (size < 72)
        return 0;

    int fd = memfd_create("qcow2-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (write(fd, data, size) != (ssize_t)size)
        abort();
    for (int rw = 0; rw < 2; rw++) {
        struct kova_disk *d;
        unsigned flags = KOVA_DISK_NO_BACKING | (rw ? 0 : KOVA_DISK_RDONLY);
        if (kova_disk_open_fd(&d, fd, NULL, KOVA_DISK_QCOW2, flags, err, sizeof(err)) < 0)
            break;
        uint64_t vs = kova_disk_size(d);
        static uint8_t buf[8192];
        for (int i = 0; i <= 8 && vs; i++) {
            uint64_t off = vs / 8 * (uint64_t)i;
            size_t n = sizeof(buf);
            if (off >= vs)
                off = vs - 1;
            if (n > vs - off)
                n = (size_t)(vs - off);
            kova_disk_pread(d, buf, n, off);
        }
        struct kova_qcow2_check res;
        kova_qcow2_check(d, &res, NULL, NULL);
        if (rw && vs) {
            for (int i = 0; i < 4; i++) {
                uint64_t off = (vs / 5) * (uint64_t)i + 777;
                size_t n = 3000;
                if (off >= vs)
                    off = 0;
                if (n > vs - off)
                    n = (size_t)(vs - off);
                kova_disk_pwrite(d, data, n < size ? n : size, off);
            }
            kova_disk_write_zeroes(d, 0, vs < 200000 ? vs : 200000);
            kova_disk_discard(d, vs / 2, vs - vs / 2);
            kova_disk_flush(d);
            kova_disk_pread(d, buf, vs < sizeof(buf) ? vs : sizeof(buf), 0);
        }
        kova_disk_close(d);
    }
    close(fd);
    return 0;
}

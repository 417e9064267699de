/* SPDX-License-Identifier: Apache-2.0 */
#include "firmware.h"
#include "platform.h"

#include <errno.h>

bool firmware_size_ok(size_t size)
{
    return size >= (64u << 10) && size <= FIRMWARE_MAX && size % (64u << 10) == 0;
}

int firmware_layout(size_t size, struct firmware_layout *out)
{
    if (!firmware_size_ok(size))
        return -EINVAL;
    size_t shadow = size < BIOS_SHADOW_SIZE ? size : (size_t)BIOS_SHADOW_SIZE;
    out->rom_gpa = (1ULL << 32) - size;
    out->shadow_gpa = BIOS_SHADOW_END - shadow;
    out->shadow_offset = size - shadow;
    out->shadow_len = shadow;
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/vmm.h"

const char *kova_vmm_name(void)
{
    return "vmm";
}

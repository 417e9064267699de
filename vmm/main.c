/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/vmm.h"

int main(int argc, char **argv)
{
    struct kova_vmm_config cfg;
    int r = kova_vmm_parse_args(argc, argv, &cfg);
    if (r == 1)
        return KOVA_VMM_EXIT_OK;
    if (r < 0)
        return KOVA_VMM_EXIT_USAGE;
    return kova_vmm_run(&cfg);
}

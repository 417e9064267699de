# SPDX-License-Identifier: Apache-2.0
"""Shared by the boot benchmarks (vmm-boot.sh, cloud-boot.sh): a VMM process's memory, and the
summary of kova's and QEMU's runs."""
import statistics


def overhead_kib(pid):
    """(RSS of all mappings except the largest one, the guest RAM; RSS of the guest RAM), KiB."""
    sizes, total, cur_size = [], 0, 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur_size = hi - lo
            elif parts[0] == "Rss:":
                rss = int(parts[1])
                sizes.append((cur_size, rss))
                total += rss
    guest = max(sizes)[1] if sizes else 0
    return total - guest, guest


def print_medians(res, what):
    """res: {"kova": [(seconds, overhead KiB)...], "qemu": [...]}; prints each kind's medians of
    `what` (the time measured) and overhead, and kova/QEMU's ratios."""
    med = {}
    for kind in ("kova", "qemu"):
        if not res[kind]:
            print(f"  {kind}: no successful boot")
            continue
        bt = statistics.median(t for t, _ in res[kind])
        ov = statistics.median(o for _, o in res[kind])
        med[kind] = (bt, ov)
        print(f"  {kind:4}: {what} {bt:.2f} s, VMM overhead {ov / 1024:.1f} MiB")
    if len(med) == 2:
        print(f"  ratio kova/qemu: {what} {med['kova'][0] / med['qemu'][0]:.2f}x, "
              f"overhead {med['kova'][1] / med['qemu'][1]:.3f}x")

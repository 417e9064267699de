#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Disassembles kova-vmm's ACPI tables with iasl (Debian acpica-tools): every table must
# disassemble without errors, and the DSDT must contain the devices the VMM relies on.
# (iasl 20200925 does not take a bare RSDP file; vmm.units checks the RSDP's checksums and
# pointer.)
set -euo pipefail
dump=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
for cpus in 1 4 16; do
    rm -f "$dir"/*
    "$dump" "$dir" "$cpus"
    for t in xsdt facp apic dsdt; do
        if ! out=$(cd "$dir" && iasl -d "$t.dat" 2>&1); then
            echo "iasl -d $t.dat failed ($cpus CPUs):"; echo "$out"; fail=1; continue
        fi
        if grep -Eiq 'warning|error|incorrect|invalid|not contain|too long' <<<"$out"; then
            echo "iasl -d $t.dat reported problems ($cpus CPUs):"; echo "$out"; fail=1
        fi
        [ -s "$dir/$t.dsl" ] || { echo "no $t.dsl"; fail=1; }
        if grep -Eq "Invalid|Incorrect|ACPI Error" "$dir/$t.dsl"; then
            echo "$t.dsl flags invalid content:"; grep -En "Invalid|Incorrect|ACPI Error" "$dir/$t.dsl"; fail=1
        fi
    done
    n=$(grep -c 'Subtable Type : 00 \[Processor Local APIC\]' "$dir/apic.dsl" || true)
    [ "$n" = "$cpus" ] || { echo "MADT lists $n local APICs, want $cpus"; fail=1; }
    grep -q 'Hardware Reduced (V5) : 1' "$dir/facp.dsl" || { echo "FADT not HW-reduced"; fail=1; }
    grep -q 'Reset Register Supported (V2) : 1' "$dir/facp.dsl" || { echo "FADT: no reset reg"; fail=1; }
done
for dev in PNP0A03 PNP0C0C ACPI0013 PNP0501 PNP0B00 _S5_ _EVT; do
    grep -q "$dev" "$dir/dsdt.dsl" || { echo "DSDT lacks $dev"; fail=1; }
done
[ "$fail" = 0 ] && echo "iasl -d: XSDT, FACP, APIC, DSDT disassemble cleanly"
exit "$fail"

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make-disk.py MBR_BIN OUT: a 1 MiB raw disk: the boot sector, then a sector of text for it."""
import sys

mbr = open(sys.argv[1], "rb").read()
if len(mbr) != 512 or mbr[510:] != b"\x55\xaa":
    sys.exit("make-disk.py: %s is not a 512-byte boot sector" % sys.argv[1])
text = b"kova-mbr: sector 2 read through the firmware\r\n\0"
open(sys.argv[2], "wb").write((mbr + text.ljust(512, b"\0")).ljust(1 << 20, b"\0"))

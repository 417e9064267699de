/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A 512-byte boot sector for the firmware-boot tests: the BIOS loads it from the first disk to
 * 0x7c00 and jumps there in real mode. It reads the disk's second sector through the BIOS
 * (INT 13h, the firmware's virtio-blk driver) to 0x7e00, prints the NUL-terminated text it holds
 * through the BIOS (INT 10h, which SeaBIOS's serial console sends to COM1), then reads the
 * BIOS's E820 map (INT 15h), prints "e820 ok" if RAM above 1 MiB is there, looks for the SMBIOS
 * 3.0 entry point and the ACPI RSDP in the BIOS area, and waits for a key. The test compares what appears on console.log.
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    sti
    /* INT 13h AH=02h: read 1 sector, cylinder 0, head 0, sector 2, drive DL (from the BIOS) */
    movw $0x0201, %ax
    movw $0x0002, %cx
    xorb %dh, %dh
    movw $0x7e00, %bx
    int $0x13
    jc disk_error
    movw $0x7e00, %si
    call print
    /* INT 15h AX=E820h: look for a RAM entry that starts at 1 MiB or above */
    xorl %ebx, %ebx
e820_next:
    movl $0xe820, %eax
    movl $24, %ecx
    movl $0x534d4150, %edx
    movw $0x0600, %di
    int $0x15
    jc e820_done
    cmpl $0x534d4150, %eax
    jne e820_done
    cmpl $1, 16(%di)
    jne e820_more
    cmpl $0, 4(%di)
    jne e820_found
    cmpl $0x100000, (%di)
    jae e820_found
e820_more:
    testl %ebx, %ebx
    jnz e820_next
e820_done:
    movw $msg_e820_bad, %si
    call print
    jmp halt
e820_found:
    movw $msg_e820_ok, %si
    call print
    /* the SMBIOS 3.0 entry point ("_SM3_") and the ACPI RSDP ("RSD PTR "), each on a 16-byte
     * boundary in the BIOS area, where SeaBIOS put what kova gave it through fw_cfg */
    movw $msg_smbios, %si
    movw $5, %bp
    call bios_find
    call print
    movw $msg_rsdp, %si
    movw $8, %bp
    call bios_find
    call print
halt:
    /* wait as a boot loader waits for a key: polling INT 16h lets SeaBIOS run its serial console,
     * which flushes what is left of its screen (from the timer interrupt in the PC build, from
     * such calls in the microvm build, which has no hardware interrupts) */
    sti
    movb $0x01, %ah
    int $0x16
    jmp halt
disk_error:
    movw $msg_disk, %si
    call print
    jmp halt

/* bios_find: whether the BP bytes at DS:SI stand on a 16-byte boundary in 0xE0000-0xFFFFF (the
 * BIOS area where ACPI and SMBIOS entry points live); SI then points at the text to print: the
 * pattern's "found" or "missing" line after it. */
bios_find:
    movw $0xe000, %ax
bios_segment:
    movw %ax, %es
    xorw %di, %di
bios_next:
    pushw %si
    pushw %di
    movw %bp, %cx
    repe cmpsb
    popw %di
    popw %si
    je bios_found
    addw $16, %di
    jnz bios_next
    movw %es, %ax
    addw $0x1000, %ax
    jnz bios_segment /* 0xE000, then 0xF000, then done */
    addw %bp, %si /* skip the pattern and the "found" line */
bios_skip:
    lodsb
    testb %al, %al
    jnz bios_skip
    ret
bios_found:
    addw %bp, %si
    ret

/* print: the NUL-terminated string at DS:SI through the BIOS (INT 10h teletype): with no VGA,
 * SeaBIOS's serial console (etc/sercon-port) puts it on COM1 in order with its own output */
print:
    lodsb
    testb %al, %al
    jz print_done
    movb $0x0e, %ah
    xorw %bx, %bx
    int $0x10
    jmp print
print_done:
    ret

msg_e820_ok:
    .asciz "kova-mbr: e820 ok\r\n"
msg_e820_bad:
    .asciz "kova-mbr: e820 has no RAM above 1 MiB\r\n"
msg_smbios:
    .ascii "_SM3_"
    .asciz "kova-mbr: smbios 3.0 entry point found\r\n"
    .asciz "kova-mbr: no smbios 3.0 entry point\r\n"
msg_rsdp:
    .ascii "RSD PTR "
    .asciz "kova-mbr: acpi rsdp found\r\n"
    .asciz "kova-mbr: no acpi rsdp\r\n"
msg_disk:
    .asciz "kova-mbr: disk read failed\r\n"

    .org 510
    .byte 0x55, 0xaa

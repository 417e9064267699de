/*
 * SPDX-License-Identifier: Apache-2.0
 * kova-vmm's DSDT, compiled by iasl at build time. Values marked (platform.h) must match it.
 */
DefinitionBlock ("dsdt.aml", "DSDT", 2, "KOVA  ", "KOVAVMM ", 1)
{
    /* S5 (soft off): SLP_TYP 5 written to the sleep control register (platform.h ACPI_S5_TYP) */
    Name (_S5, Package () { 5, 0, 0, 0 })

    Scope (\_SB)
    {
        /* PCI host bridge: bus 0, conf1 at 0xcf8, MMIO window 0xc0000000..0xfebfffff
           (platform.h MMIO_PCI_START/END). */
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A03"))
            Name (_UID, Zero)
            Name (_SEG, Zero)
            Name (_BBN, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, 0x0000, 0x0000, 0x0001)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
                    ReadWrite, 0x00000000, 0xC0000000, 0xFEBFFFFF, 0x00000000, 0x3EC00000)
            })
        }

        /* Legacy devices with their ISA interrupts: on a hardware-reduced platform the guest
           maps IRQs only for devices the firmware describes (platform.h PIO_COM1/GSI_COM1,
           PIO_RTC/GSI_RTC). */
        Device (COM1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
                IRQNoFlags () { 4 }
            })
        }

        Device (RTC)
        {
            Name (_HID, EisaId ("PNP0B00"))
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x0070, 0x0070, 0x01, 0x02)
                IRQNoFlags () { 8 }
            })
        }

        /* The power button the VMM presses (control socket "powerdown"). */
        Device (PWRB)
        {
            Name (_HID, "PNP0C0C")
            Name (_UID, Zero)
        }

        /* Generic event device: GSI 5 (platform.h GSI_GED), edge, means "power button". */
        Device (GED0)
        {
            Name (_HID, "ACPI0013")
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 5 }
            })
            Method (_EVT, 1, Serialized)
            {
                If ((Arg0 == 5))
                {
                    Notify (\_SB.PWRB, 0x80)
                }
            }
        }
    }
}

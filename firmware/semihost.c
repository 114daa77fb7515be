/* Exit QEMU with a status through semihosting SYS_EXIT_EXTENDED. On a real
 * board without a debugger BKPT would fault, so there it just stops. */
#include "fw.h"

void fw_exit(int code)
{
#if FW_EMULATED
    static volatile uint32_t block[2];
    block[0] = 0x20026;   /* ADP_Stopped_ApplicationExit */
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm__("r0") = 0x20;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
#else
    (void)code;
#endif
    __asm__ volatile("cpsid i");
    for (;;) {}
}

/* Reset, vector table and fault handling for every Cortex-M board.
 * C only: the core loads SP and PC from the table itself, so no assembly. */
#include "fw.h"

/* External interrupt slots up to the board's UART RX IRQ, the only one the
 * firmware enables (timer.c): a 96-slot table cost mps2 builds 380 B of flash. */
#define FW_NUM_IRQS (FW_UART_RX_IRQ + 1)

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_top;
int main(void);
void systick_handler(void);

#define SCB_VTOR REG32(0xE000ED08)
#define SCB_CPACR REG32(0xE000ED88)

static void fault_handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    /* In QEMU the exit code names the exception (128 + number) so the host can
     * say what died; on a board the loop leaves it for a debugger. */
    fw_exit(128 + (int)(ipsr & 0x1FF));
}

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
#if FW_HAS_FPU
    /* Full access to CP10/CP11 before any floating-point instruction runs. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    SCB_VTOR = FW_VECTOR_TABLE;
    main();
    fw_exit(0);
}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used))
const vector_t fw_vectors[16 + FW_NUM_IRQS] = {
    [0] = (vector_t)(uintptr_t)&__stack_top,
    [1] = reset_handler,
    [2 ... 14] = fault_handler,   /* NMI, faults, SVC, PendSV: none expected */
    [15] = systick_handler,
    [16 ... 16 + FW_NUM_IRQS - 1] = fault_handler,   /* IRQs only ever wake WFI */
};

/* SysTick does two jobs, never at once: a 1 ms tick while waiting for bytes
 * (receive timeouts, and a WFI wake-up even if the UART IRQ is wrong), and on
 * emulated boards the cost counter around an inference: with QEMU's
 * -icount shift=0 a tick is a fixed number of instructions. Real boards count
 * core cycles with DWT CYCCNT instead (QEMU reads it as 0). */
#include "fw.h"

#define SYST_CSR REG32(0xE000E010)
#define SYST_RVR REG32(0xE000E014)
#define SYST_CVR REG32(0xE000E018)
#define SCB_ICSR REG32(0xE000ED04)
#define ICSR_PENDSTCLR (1u << 25)
#define CSR_ENABLE_TICKINT_CORECLK 0x7u
#define CSR_COUNTFLAG (1u << 16)
#define NVIC_ISER(n) REG32(0xE000E100 + 4 * (n))
#define NVIC_ICER(n) REG32(0xE000E180 + 4 * (n))
#define NVIC_ICPR(n) REG32(0xE000E280 + 4 * (n))

#define DEMCR REG32(0xE000EDFC)
#define DWT_CTRL REG32(0xE0001000)
#define DWT_CYCCNT REG32(0xE0001004)
#define DWT_LAR REG32(0xE0001FB0)

static volatile uint32_t wraps;

void systick_handler(void)
{
    wraps++;   /* only taken while counting, when PRIMASK is clear */
}

static void uart_irq_enable(int on)
{
#ifdef FW_UART_RX_IRQ
    NVIC_ICPR(FW_UART_RX_IRQ / 32) = 1u << (FW_UART_RX_IRQ % 32);
    if (on)
        NVIC_ISER(FW_UART_RX_IRQ / 32) = 1u << (FW_UART_RX_IRQ % 32);
    else
        NVIC_ICER(FW_UART_RX_IRQ / 32) = 1u << (FW_UART_RX_IRQ % 32);
#else
    (void)on;
#endif
}

void ms_timer_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = FW_CORE_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = CSR_ENABLE_TICKINT_CORECLK;
}

int ms_timer_elapsed(void)
{
    return (SYST_CSR & CSR_COUNTFLAG) != 0;   /* reading clears COUNTFLAG */
}

void wait_for_event(void)
{
    /* PRIMASK is set, so a pending SysTick or UART IRQ wakes WFI without its
     * handler running. Clear the pendings, then look again before sleeping:
     * anything arriving after the look re-pends and WFI returns at once. */
    SCB_ICSR = ICSR_PENDSTCLR;
    uart_rx_irq_clear();
#ifdef FW_UART_RX_IRQ
    NVIC_ICPR(FW_UART_RX_IRQ / 32) = 1u << (FW_UART_RX_IRQ % 32);
#endif
    if (uart_rx_ready() || (SYST_CSR & CSR_COUNTFLAG))
        return;
    __asm__ volatile("dsb\n\twfi" ::: "memory");
}

void timer_init(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    uart_irq_enable(1);
}

#if FW_COUNTER_ICOUNT
void counter_begin(void)
{
    uart_irq_enable(0);   /* a stray byte must not take an IRQ mid-inference */
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    wraps = 0;
    SCB_ICSR = ICSR_PENDSTCLR;
    SYST_CSR = CSR_ENABLE_TICKINT_CORECLK;
    while (SYST_CVR == 0) {}   /* the first reload happens one tick after enabling */
    __asm__ volatile("cpsie i" ::: "memory");
}

uint64_t counter_now(void)
{
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    return (uint64_t)w * 0x1000000u + (0xFFFFFFu - v);
}

void counter_end(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    SYST_CSR = 0;
    uart_irq_enable(1);
}
#else
void counter_begin(void)
{
    DEMCR |= 1u << 24;          /* TRCENA */
    DWT_LAR = 0xC5ACCE55u;      /* Cortex-M7 locks the DWT until this key */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;             /* CYCCNTENA */
}

uint64_t counter_now(void)
{
    return DWT_CYCCNT;
}

void counter_end(void)
{
}
#endif

uint64_t counter_to_units(uint64_t raw)
{
    return raw * FW_COUNT_NUM / FW_COUNT_DEN;
}

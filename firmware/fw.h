/* Interfaces between the firmware's files. board_config.h is generated per
 * build from boards/<name>.toml by tinycomp/targets/firmware.py. */
#ifndef TINYCOMP_FW_H
#define TINYCOMP_FW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board_config.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Code that runs once per session or per request, never in an inference:
 * compiled for size, kept out of line (flash is the scarce resource here). */
#define FW_COLD __attribute__((cold, noinline))

/* board_init.c: clocks (skippable for emulation) and pin set-up from the board data. */
void board_init(void);

/* uart_<kind>.c: exactly one is linked, chosen by the board's uart.kind. */
void uart_init(void);
void uart_putc(uint8_t c);
int uart_rx_ready(void);
uint8_t uart_rx_take(void);     /* only after uart_rx_ready() */
void uart_rx_irq_clear(void);   /* drop the driver's latched RX interrupt */

/* timer.c: SysTick as a millisecond timer while idle, and the cost counter. */
void timer_init(void);         /* PRIMASK on, UART RX IRQ armed to wake WFI */
void ms_timer_start(void);
int ms_timer_elapsed(void);     /* 1 when a millisecond passed since the last call */
void wait_for_event(void);      /* WFI until a byte, a tick, or anything else */
void counter_begin(void);
uint64_t counter_now(void);     /* raw ticks (icount) or cycles (DWT) */
void counter_end(void);
uint64_t counter_to_units(uint64_t raw);  /* ticks -> instructions; cycles stay */

/* semihost.c: exit QEMU with a code (emulated boards only). */
void fw_exit(int code);

/* main.c */
void fw_layer_mark(int layer);

#endif

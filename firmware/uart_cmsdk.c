/* ARM CMSDK APB UART (the MPS2 boards' UART0). */
#include "fw.h"

#define U_DATA REG32(FW_UART_BASE + 0x00)
#define U_STATE REG32(FW_UART_BASE + 0x04)
#define U_CTRL REG32(FW_UART_BASE + 0x08)
#define U_INT REG32(FW_UART_BASE + 0x0C)
#define U_BAUDDIV REG32(FW_UART_BASE + 0x10)

#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define STATE_RX_OVERRUN 0x8u
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
#define CTRL_RX_INT_EN 0x8u
#define INT_RX 0x2u

void uart_init(void)
{
    U_BAUDDIV = FW_UART_DIVISOR;
    U_CTRL = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
}

void uart_putc(uint8_t c)
{
    while (U_STATE & STATE_TX_FULL) {}
    U_DATA = c;
}

int uart_rx_ready(void)
{
    return (U_STATE & STATE_RX_FULL) != 0;
}

uint8_t uart_rx_take(void)
{
    uint8_t c = (uint8_t)U_DATA;
    if (U_STATE & STATE_RX_OVERRUN)
        U_STATE = STATE_RX_OVERRUN;   /* write-one-to-clear; the CRC catches the loss */
    return c;
}

void uart_rx_irq_clear(void)
{
    U_INT = INT_RX;   /* the RX interrupt is latched until cleared */
}

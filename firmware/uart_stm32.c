/* STM32 USART/LPUART. Two register layouts: v1 (F1/F2/F4: SR, DR, BRR, CR1)
 * and v2 (F7, L4, G4, H7: CR1, BRR, ISR, ICR, RDR, TDR); LPUART is v2 with a
 * 256x baud divisor, computed in Python into FW_UART_DIVISOR. */
#include "fw.h"

#if FW_UART_STM32_V1
#define U_SR REG32(FW_UART_BASE + 0x00)
#define U_DR REG32(FW_UART_BASE + 0x04)
#define U_BRR REG32(FW_UART_BASE + 0x08)
#define U_CR1 REG32(FW_UART_BASE + 0x0C)
#define CR1_UE (1u << 13)
#define U_STATUS U_SR
#define U_RX U_DR
#define U_TX U_DR
#else
#define U_CR1 REG32(FW_UART_BASE + 0x00)
#define U_BRR REG32(FW_UART_BASE + 0x0C)
#define U_ISR REG32(FW_UART_BASE + 0x1C)
#define U_ICR REG32(FW_UART_BASE + 0x20)
#define U_RDR REG32(FW_UART_BASE + 0x24)
#define U_TDR REG32(FW_UART_BASE + 0x28)
#define CR1_UE (1u << 0)
#define U_STATUS U_ISR
#define U_RX U_RDR
#define U_TX U_TDR
#endif

#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)
#define ST_ORE (1u << 3)
#define ST_RXNE (1u << 5)
#define ST_TXE (1u << 7)

void uart_init(void)
{
    U_CR1 = 0;
    U_BRR = FW_UART_DIVISOR;
    U_CR1 = CR1_TE | CR1_RE | CR1_RXNEIE;
    U_CR1 |= CR1_UE;   /* bytes written before UE are dropped (QEMU and silicon) */
}

void uart_putc(uint8_t c)
{
    while (!(U_STATUS & ST_TXE)) {}
    U_TX = c;
}

int uart_rx_ready(void)
{
#if !FW_UART_STM32_V1
    /* v2 stops receiving while ORE is set; clear it (v1 clears on SR+DR reads). */
    if (U_ISR & ST_ORE)
        U_ICR = ST_ORE;
#endif
    return (U_STATUS & ST_RXNE) != 0;
}

uint8_t uart_rx_take(void)
{
    return (uint8_t)U_RX;
}

void uart_rx_irq_clear(void)
{
    /* RXNE is the interrupt source and reading the data register clears it. */
}

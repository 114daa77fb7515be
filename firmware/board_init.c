/* Runs the board's clock and pin set-up: register writes listed in its TOML
 * file and emitted into board_config.h. Waits are bounded so a missing or
 * unmodelled clock (QEMU's STM32 RCC) slows boot instead of hanging it. */
#include "fw.h"

#define FW_WAIT_LIMIT 2000000u

typedef struct {
    uint32_t op, addr, mask, value;
} reg_op_t;

#if FW_CLOCK_OPS_COUNT
static const reg_op_t clock_ops[] = FW_CLOCK_OPS;
#endif
#if FW_PIN_OPS_COUNT
static const reg_op_t pin_ops[] = FW_PIN_OPS;
#endif

uint32_t fw_init_timeouts;   /* waits that ran out; DESCRIBE reports it */

#if FW_CLOCK_OPS_COUNT || FW_PIN_OPS_COUNT
static void run_ops(const reg_op_t *ops, int n)
{
    for (int i = 0; i < n; i++) {
        const reg_op_t *o = &ops[i];
        switch (o->op) {
        case FW_OP_WRITE: REG32(o->addr) = o->value; break;
        case FW_OP_SET: REG32(o->addr) |= o->mask; break;
        case FW_OP_CLEAR: REG32(o->addr) &= ~o->mask; break;
        case FW_OP_FIELD: REG32(o->addr) = (REG32(o->addr) & ~o->mask) | o->value; break;
        case FW_OP_WAIT: {
            uint32_t k = 0;
            while ((REG32(o->addr) & o->mask) != o->value && ++k < FW_WAIT_LIMIT) {}
            if (k >= FW_WAIT_LIMIT)
                fw_init_timeouts++;
            break;
        }
        case FW_OP_DELAY:
            for (volatile uint32_t k = 0; k < o->value; k++) {}
            break;
        default: break;
        }
    }
}
#endif

void board_init(void)
{
#if FW_CLOCK_OPS_COUNT
    run_ops(clock_ops, FW_CLOCK_OPS_COUNT);
#endif
#if FW_PIN_OPS_COUNT
    run_ops(pin_ops, FW_PIN_OPS_COUNT);
#endif
}

/* The on-target runner: answers DESCRIBE, INFER, PROFILE and ECHO frames,
 * reports every malformed frame with an error frame, and keeps serving. */
#include "fw.h"
#include "protocol.h"
#include "tinycomp_model.h"

_Static_assert(TINYCOMP_INPUT_SIZE <= 65535, "INFER payload length is a u16");
_Static_assert(TINYCOMP_OUTPUT_SIZE + 8 + 10 + 8 * (TINYCOMP_NUM_LAYERS + 1) <= 65535,
               "PROFILE reply length is a u16");

#define RX_CAP (TINYCOMP_INPUT_SIZE > 256 ? TINYCOMP_INPUT_SIZE : 256)

extern uint32_t fw_init_timeouts;

static uint8_t rx_buf[RX_CAP] __attribute__((aligned(8)));
static int8_t out_buf[TINYCOMP_OUTPUT_SIZE] __attribute__((aligned(8)));
static uint64_t stamps[TINYCOMP_NUM_LAYERS + 1];
static uint64_t overhead;   /* cost of an empty measurement, in count units */

void fw_layer_mark(int layer)
{
    if (layer >= 0 && layer <= TINYCOMP_NUM_LAYERS)
        stamps[layer] = counter_now();
}

static uint64_t run_model(const uint8_t *input)
{
    /* The sample goes into the arena before the count starts, as an
     * application writing its sensor data there would (and as TFLM's
     * benchmarks fill the input tensor): the count is the inference alone. */
    memcpy(tinycomp_input_buffer(), input, TINYCOMP_INPUT_SIZE);
    counter_begin();
    uint64_t t0 = counter_now();
    tinycomp_invoke(tinycomp_input_buffer(), out_buf);
    uint64_t t1 = counter_now();
    counter_end();
    return t1 - t0;
}

FW_COLD static void measure_overhead(void)
{
    counter_begin();
    uint64_t t0 = counter_now();
    uint64_t t1 = counter_now();
    counter_end();
    overhead = counter_to_units(t1 - t0);
}

/* Little-endian payload builder for DESCRIBE. */
typedef struct {
    uint8_t buf[256];
    uint32_t n;
} wbuf_t;

static void w_bytes(wbuf_t *w, const void *p, uint32_t n)
{
    if (w->n + n <= sizeof w->buf) {
        memcpy(w->buf + w->n, p, n);
        w->n += n;
    }
}

static void w_u(wbuf_t *w, uint32_t v, int size)
{
    for (int i = 0; i < size; i++)
        w->buf[w->n < sizeof w->buf ? w->n++ : w->n - 1] = (uint8_t)(v >> (8 * i));
}

FW_COLD static void w_str(wbuf_t *w, const char *s)
{
    uint32_t n = 0;
    while (s[n] && n < 255)
        n++;
    w_u(w, n, 1);
    w_bytes(w, s, n);
}

FW_COLD static void w_f32(wbuf_t *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);   /* raw IEEE bits; no FPU instruction needed */
    w_u(w, bits, 4);
}

FW_COLD static void describe(uint8_t seq)
{
    static const int32_t in_shape[] = TINYCOMP_INPUT_SHAPE;
    static const int32_t out_shape[] = TINYCOMP_OUTPUT_SHAPE;
    static wbuf_t w;
    w.n = 0;
    w_u(&w, PROTO_VERSION, 1);
    w_u(&w, FW_COUNTER_ICOUNT ? 0u : 1u, 1);   /* 0: instructions, 1: cycles */
    w_u(&w, (FW_EMULATED ? 1u : 0u) | (FW_TEST_COMMANDS ? 2u : 0u), 1);
    w_u(&w, 0, 1);
    w_str(&w, TINYCOMP_MODEL_HASH);
    w_str(&w, TINYCOMP_VERSION);
    w_str(&w, FW_BOARD_NAME);
    w_u(&w, TINYCOMP_INPUT_SIZE, 4);
    w_u(&w, TINYCOMP_OUTPUT_SIZE, 4);
    w_u(&w, TINYCOMP_ARENA_BYTES, 4);
    w_u(&w, TINYCOMP_NUM_LAYERS, 2);
    w_u(&w, RX_CAP, 2);
    w_u(&w, FW_COUNT_NUM, 4);
    w_u(&w, FW_COUNT_DEN, 4);
    w_u(&w, (uint32_t)overhead, 4);
    w_u(&w, fw_init_timeouts, 4);
    w_u(&w, TINYCOMP_INPUT_RANK, 1);
    for (int i = 0; i < TINYCOMP_INPUT_RANK; i++)
        w_u(&w, (uint32_t)in_shape[i], 4);
    w_u(&w, TINYCOMP_OUTPUT_RANK, 1);
    for (int i = 0; i < TINYCOMP_OUTPUT_RANK; i++)
        w_u(&w, (uint32_t)out_shape[i], 4);
    w_f32(&w, TINYCOMP_INPUT_SCALE);
    w_u(&w, (uint32_t)(int32_t)(TINYCOMP_INPUT_ZERO_POINT), 4);
    w_f32(&w, TINYCOMP_OUTPUT_SCALE);
    w_u(&w, (uint32_t)(int32_t)(TINYCOMP_OUTPUT_ZERO_POINT), 4);
    proto_send_begin(CMD_DESCRIBE | CMD_REPLY, seq, (uint16_t)w.n);
    proto_send_bytes(w.buf, w.n);
    proto_send_end();
}

static void send_u64(uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    proto_send_bytes(b, 8);
}

static void infer(uint8_t seq, const uint8_t *input)
{
    uint64_t cost = counter_to_units(run_model(input));
    proto_send_begin(CMD_INFER | CMD_REPLY, seq, 8 + TINYCOMP_OUTPUT_SIZE);
    send_u64(cost);
    proto_send_bytes(out_buf, TINYCOMP_OUTPUT_SIZE);
    proto_send_end();
}

FW_COLD static void profile(uint8_t seq, const uint8_t *input)
{
    for (int i = 0; i <= TINYCOMP_NUM_LAYERS; i++)
        stamps[i] = 0;
    uint64_t cost = counter_to_units(run_model(input));
    uint16_t n = TINYCOMP_NUM_LAYERS;
    proto_send_begin(CMD_PROFILE | CMD_REPLY, seq, (uint16_t)(8 + 2 + 8 * n + TINYCOMP_OUTPUT_SIZE));
    send_u64(cost);
    uint8_t nb[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    proto_send_bytes(nb, 2);
    for (int i = 0; i < n; i++)
        send_u64(counter_to_units(stamps[i + 1] - stamps[i]));
    proto_send_bytes(out_buf, TINYCOMP_OUTPUT_SIZE);
    proto_send_end();
}

static void handle(const proto_parser_t *p)
{
    int needs_input = p->cmd == CMD_INFER || p->cmd == CMD_PROFILE;
    if (needs_input && p->len != TINYCOMP_INPUT_SIZE) {
        proto_send_error(p->seq, ERR_BAD_LENGTH, p->cmd, TINYCOMP_INPUT_SIZE);
        return;
    }
    switch (p->cmd) {
    case CMD_DESCRIBE: describe(p->seq); return;
    case CMD_INFER: infer(p->seq, p->buf); return;
    case CMD_PROFILE: profile(p->seq, p->buf); return;
    case CMD_ECHO:
        proto_send_begin(CMD_ECHO | CMD_REPLY, p->seq, p->len);
        proto_send_bytes(p->buf, p->len);
        proto_send_end();
        return;
#if FW_TEST_COMMANDS
    case CMD_TEST_HANG:
        for (;;) {}
    case CMD_TEST_EXIT:
        fw_exit(p->len ? p->buf[0] : 0);
        return;
#endif
    default:
        proto_send_error(p->seq, ERR_UNKNOWN_CMD, p->cmd, p->cmd);
    }
}

/* One byte, or -1 when timeout_ms (>= 0) passes without one. */
static int rx_byte(int timeout_ms)
{
    ms_timer_start();
    for (;;) {
        if (uart_rx_ready())
            return uart_rx_take();
        if (ms_timer_elapsed() && timeout_ms >= 0 && --timeout_ms <= 0)
            return -1;
        wait_for_event();
    }
}

int main(void)
{
    static proto_parser_t parser;
    int quiet = 0;   /* an error was just reported: its trailing bytes are not news */

    board_init();
    uart_init();
    timer_init();
    measure_overhead();
    proto_init(&parser, rx_buf, RX_CAP);

    for (;;) {
        int pending = proto_in_frame(&parser) || parser.garbage;
        int b = rx_byte(pending ? (int)FW_RX_TIMEOUT_MS : -1);
        if (b < 0) {
            if (proto_in_frame(&parser))
                proto_send_error(parser.seq, ERR_TRUNCATED, parser.cmd, parser.pos);
            else if (!quiet)
                proto_send_error(0xFF, ERR_GARBAGE, 0, parser.garbage);
            quiet = 0;
            parser.garbage = 0;
            proto_reset(&parser);
            continue;
        }
        switch (proto_feed(&parser, (uint8_t)b)) {
        case EV_FRAME:
            quiet = 0;
            parser.garbage = 0;
            handle(&parser);
            break;
        case EV_BAD_CRC:
            proto_send_error(parser.seq, ERR_BAD_CRC, parser.cmd, parser.rx_crc);
            quiet = 1;
            break;
        case EV_OVERSIZE:
            proto_send_error(parser.seq, ERR_OVERSIZE, parser.cmd, parser.len);
            quiet = 1;
            break;
        default:
            break;
        }
    }
}

/* The on-target runner: answers DESCRIBE, INFER, PROFILE, RESET and ECHO frames,
 * reports every malformed frame with an error frame, and keeps serving. */
#include "fw.h"
#include "protocol.h"
#include "tinycomp_model.h"

_Static_assert(TINYCOMP_INPUT_BYTES_TOTAL <= 65535, "INFER payload length is a u16");
_Static_assert(TINYCOMP_OUTPUT_BYTES_TOTAL + 8 + 10 + 8 * (TINYCOMP_NUM_LAYERS + 1) <= 65535,
               "PROFILE reply length is a u16");

#define RX_CAP (TINYCOMP_INPUT_BYTES_TOTAL > 256 ? TINYCOMP_INPUT_BYTES_TOTAL : 256)

extern uint32_t fw_init_timeouts;

static uint8_t rx_buf[RX_CAP] __attribute__((aligned(8)));
/* The outputs, each in its own 8-aligned slot (float and int16 outputs). */
static uint64_t out_store[(TINYCOMP_OUTPUT_BYTES_TOTAL + 8 * TINYCOMP_NUM_OUTPUTS) / 8 + 1];
static const uint32_t in_bytes[] = TINYCOMP_INPUT_BYTES_LIST;
static const uint32_t out_bytes[] = TINYCOMP_OUTPUT_BYTES_LIST;
static uint64_t stamps[TINYCOMP_NUM_LAYERS + 1];
static uint64_t overhead;   /* cost of an empty measurement, in count units */

void fw_layer_mark(int layer)
{
    if (layer >= 0 && layer <= TINYCOMP_NUM_LAYERS)
        stamps[layer] = counter_now();
}

static uint8_t *out_slot(int k)
{
    uint8_t *p = (uint8_t *)out_store;
    for (int i = 0; i < k; i++)
        p += (out_bytes[i] + 7) / 8 * 8;
    return p;
}

static uint64_t run_model(const uint8_t *input)
{
    /* The samples go into the arena before the count starts, as an
     * application writing its sensor data there would (and as TFLM's
     * benchmarks fill the input tensors): the count is the inference alone.
     * The payload holds every input's bytes, one after another. */
    void *ins[] = TINYCOMP_INPUT_BUFFER_LIST;
    void *outs[TINYCOMP_NUM_OUTPUTS];
    for (int k = 0; k < TINYCOMP_NUM_INPUTS; k++) {
        memcpy(ins[k], input, in_bytes[k]);
        input += in_bytes[k];
    }
    for (int k = 0; k < TINYCOMP_NUM_OUTPUTS; k++)
        outs[k] = out_slot(k);
    counter_begin();
    uint64_t t0 = counter_now();
    TINYCOMP_INVOKE_ARRAYS(ins, outs);
    uint64_t t1 = counter_now();
    counter_end();
    return t1 - t0;
}

/* Every output's bytes, one after another. */
static void send_outputs(void)
{
    for (int k = 0; k < TINYCOMP_NUM_OUTPUTS; k++)
        proto_send_bytes(out_slot(k), out_bytes[k]);
}

FW_COLD static void measure_overhead(void)
{
    counter_begin();
    uint64_t t0 = counter_now();
    uint64_t t1 = counter_now();
    counter_end();
    overhead = counter_to_units(t1 - t0);
}

/* Little-endian payload builder for DESCRIBE: fixed fields, then per input
 * and output up to 6 dims (a larger rank is cut short, which the host
 * notices). */
typedef struct {
    uint8_t buf[96 + 42 * (TINYCOMP_NUM_INPUTS + TINYCOMP_NUM_OUTPUTS)];
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

/* n tensors: type code u8, bytes u32, rank u8, dims i32 x rank, scale f32, zero point i32 */
FW_COLD static void w_tensors(wbuf_t *w, int n, const uint8_t *types, const uint32_t *bytes,
                              const uint8_t *ranks, const int32_t *dims, const float *scales,
                              const int32_t *zps)
{
    w_u(w, (uint32_t)n, 1);
    for (int k = 0; k < n; k++) {
        w_u(w, types[k], 1);
        w_u(w, bytes[k], 4);
        w_u(w, ranks[k], 1);
        for (int d = 0; d < ranks[k]; d++)
            w_u(w, (uint32_t)*dims++, 4);
        w_f32(w, scales[k]);
        w_u(w, (uint32_t)zps[k], 4);
    }
}

FW_COLD static void describe(uint8_t seq)
{
    static const uint8_t in_types[] = TINYCOMP_INPUT_TYPE_CODES, out_types[] = TINYCOMP_OUTPUT_TYPE_CODES;
    static const uint8_t in_ranks[] = TINYCOMP_INPUT_RANKS, out_ranks[] = TINYCOMP_OUTPUT_RANKS;
    static const int32_t in_dims[] = TINYCOMP_INPUT_DIMS, out_dims[] = TINYCOMP_OUTPUT_DIMS;
    static const float in_scales[] = TINYCOMP_INPUT_SCALES, out_scales[] = TINYCOMP_OUTPUT_SCALES;
    static const int32_t in_zps[] = TINYCOMP_INPUT_ZERO_POINTS, out_zps[] = TINYCOMP_OUTPUT_ZERO_POINTS;
    static wbuf_t w;
    w.n = 0;
    w_u(&w, PROTO_VERSION, 1);
    w_u(&w, FW_COUNTER_ICOUNT ? 0u : 1u, 1);   /* 0: instructions, 1: cycles */
    w_u(&w, (FW_EMULATED ? 1u : 0u) | (FW_TEST_COMMANDS ? 2u : 0u), 1);
    w_u(&w, 0, 1);
    w_str(&w, TINYCOMP_MODEL_HASH);
    w_str(&w, TINYCOMP_VERSION);
    w_str(&w, FW_BOARD_NAME);
    w_u(&w, TINYCOMP_ARENA_BYTES, 4);
    w_u(&w, TINYCOMP_NUM_LAYERS, 2);
    w_u(&w, RX_CAP, 2);
    w_u(&w, FW_COUNT_NUM, 4);
    w_u(&w, FW_COUNT_DEN, 4);
    w_u(&w, (uint32_t)overhead, 4);
    w_u(&w, fw_init_timeouts, 4);
    w_tensors(&w, TINYCOMP_NUM_INPUTS, in_types, in_bytes, in_ranks, in_dims, in_scales, in_zps);
    w_tensors(&w, TINYCOMP_NUM_OUTPUTS, out_types, out_bytes, out_ranks, out_dims, out_scales, out_zps);
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
    proto_send_begin(CMD_INFER | CMD_REPLY, seq, 8 + TINYCOMP_OUTPUT_BYTES_TOTAL);
    send_u64(cost);
    send_outputs();
    proto_send_end();
}

FW_COLD static void profile(uint8_t seq, const uint8_t *input)
{
    for (int i = 0; i <= TINYCOMP_NUM_LAYERS; i++)
        stamps[i] = 0;
    uint64_t cost = counter_to_units(run_model(input));
    uint16_t n = TINYCOMP_NUM_LAYERS;
    proto_send_begin(CMD_PROFILE | CMD_REPLY, seq, (uint16_t)(8 + 2 + 8 * n + TINYCOMP_OUTPUT_BYTES_TOTAL));
    send_u64(cost);
    uint8_t nb[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    proto_send_bytes(nb, 2);
    for (int i = 0; i < n; i++)
        send_u64(counter_to_units(stamps[i + 1] - stamps[i]));
    send_outputs();
    proto_send_end();
}

static void handle(const proto_parser_t *p)
{
    int needs_input = p->cmd == CMD_INFER || p->cmd == CMD_PROFILE;
    if (p->cmd == CMD_RESET && p->len != 0) {
        proto_send_error(p->seq, ERR_BAD_LENGTH, p->cmd, 0);
        return;
    }
    if (needs_input && p->len != TINYCOMP_INPUT_BYTES_TOTAL) {
        proto_send_error(p->seq, ERR_BAD_LENGTH, p->cmd, TINYCOMP_INPUT_BYTES_TOTAL);
        return;
    }
    switch (p->cmd) {
    case CMD_DESCRIBE: describe(p->seq); return;
    case CMD_INFER: infer(p->seq, p->buf); return;
    case CMD_PROFILE: profile(p->seq, p->buf); return;
    case CMD_RESET:
        /* a new sequence for stateful models (SVDF): as after power-up */
        tinycomp_reset_state();
        proto_send_begin(CMD_RESET | CMD_REPLY, p->seq, 0);
        proto_send_end();
        return;
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

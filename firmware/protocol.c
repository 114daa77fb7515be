/* Frame parser and writer. The parser is a byte-at-a-time state machine so
 * garbage, bad CRCs and oversize lengths cost nothing but a resync; a
 * receive timeout (main.c) resets a half-received frame. */
#include "fw.h"
#include "protocol.h"

enum { ST_HUNT0, ST_HUNT1, ST_CMD, ST_SEQ, ST_LEN0, ST_LEN1, ST_PAYLOAD, ST_CRC0, ST_CRC1 };

/* Nibble table: 32 bytes of flash instead of 512, fast enough for a UART. */
static const uint16_t crc_nibble[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
    0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF,
};

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *p, uint32_t n)
{
    while (n--) {
        crc = (uint16_t)((crc << 4) ^ crc_nibble[(crc >> 12) ^ (*p >> 4)]);
        crc = (uint16_t)((crc << 4) ^ crc_nibble[(crc >> 12) ^ (*p & 0xF)]);
        p++;
    }
    return crc;
}

static uint16_t crc_byte(uint16_t crc, uint8_t b)
{
    return crc16_ccitt(crc, &b, 1);
}

void proto_init(proto_parser_t *p, uint8_t *buf, uint16_t cap)
{
    p->buf = buf;
    p->cap = cap;
    p->garbage = 0;
    proto_reset(p);
}

void proto_reset(proto_parser_t *p)
{
    p->state = ST_HUNT0;
    p->seq = 0xFF;
    p->cmd = 0;
}

int proto_in_frame(const proto_parser_t *p)
{
    return p->state > ST_HUNT1;
}

proto_event_t proto_feed(proto_parser_t *p, uint8_t b)
{
    switch (p->state) {
    case ST_HUNT0:
        if (b == PROTO_SYNC0)
            p->state = ST_HUNT1;
        else
            p->garbage++;
        return EV_NONE;
    case ST_HUNT1:
        if (b == PROTO_SYNC1) {
            p->state = ST_CMD;
            p->crc = 0xFFFF;
        } else if (b != PROTO_SYNC0) {
            p->garbage += 2;
            p->state = ST_HUNT0;
        } else {
            p->garbage++;
        }
        return EV_NONE;
    case ST_CMD:
        p->cmd = b;
        p->crc = crc_byte(p->crc, b);
        p->state = ST_SEQ;
        return EV_NONE;
    case ST_SEQ:
        p->seq = b;
        p->crc = crc_byte(p->crc, b);
        p->state = ST_LEN0;
        return EV_NONE;
    case ST_LEN0:
        p->len = b;
        p->crc = crc_byte(p->crc, b);
        p->state = ST_LEN1;
        return EV_NONE;
    case ST_LEN1:
        p->len |= (uint16_t)(b << 8);
        p->crc = crc_byte(p->crc, b);
        p->pos = 0;
        if (p->len > p->cap) {
            /* Do not swallow len bytes: the length may itself be garbage. Hunt
             * again; the payload that follows is skipped as unsynced bytes. */
            p->state = ST_HUNT0;
            return EV_OVERSIZE;
        }
        p->state = p->len ? ST_PAYLOAD : ST_CRC0;
        return EV_NONE;
    case ST_PAYLOAD:
        p->buf[p->pos++] = b;
        if (p->pos == p->len) {
            p->crc = crc16_ccitt(p->crc, p->buf, p->len);
            p->state = ST_CRC0;
        }
        return EV_NONE;
    case ST_CRC0:
        p->rx_crc = b;
        p->state = ST_CRC1;
        return EV_NONE;
    default:
        p->rx_crc |= (uint16_t)(b << 8);
        p->state = ST_HUNT0;
        return p->rx_crc == p->crc ? EV_FRAME : EV_BAD_CRC;
    }
}

static uint16_t tx_crc;

static void put(uint8_t b)
{
    uart_putc(b);
}

void proto_send_begin(uint8_t cmd, uint8_t seq, uint16_t len)
{
    uint8_t hdr[4] = {cmd, seq, (uint8_t)len, (uint8_t)(len >> 8)};
    put(PROTO_SYNC0);
    put(PROTO_SYNC1);
    tx_crc = 0xFFFF;
    proto_send_bytes(hdr, sizeof hdr);
}

void proto_send_bytes(const void *data, uint32_t n)
{
    const uint8_t *p = data;
    tx_crc = crc16_ccitt(tx_crc, p, n);
    while (n--)
        put(*p++);
}

void proto_send_end(void)
{
    put((uint8_t)tx_crc);
    put((uint8_t)(tx_crc >> 8));
}

void proto_send_error(uint8_t seq, uint8_t code, uint8_t cmd, uint32_t detail)
{
    uint8_t body[6] = {code, cmd, (uint8_t)detail, (uint8_t)(detail >> 8),
                       (uint8_t)(detail >> 16), (uint8_t)(detail >> 24)};
    proto_send_begin(CMD_ERROR, seq, sizeof body);
    proto_send_bytes(body, sizeof body);
    proto_send_end();
}

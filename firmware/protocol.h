/* The framed serial protocol (docs in tinycomp/targets/protocol.py):
 *   0xA5 0x5A | cmd u8 | seq u8 | len u16 LE | payload[len] | crc u16 LE
 * crc = CRC-16/CCITT-FALSE over cmd..payload. Replies carry cmd | 0x80 and the
 * request's seq; errors are cmd 0xFF. */
#ifndef TINYCOMP_FW_PROTOCOL_H
#define TINYCOMP_FW_PROTOCOL_H

#include <stdint.h>

#define PROTO_VERSION 2
#define PROTO_SYNC0 0xA5
#define PROTO_SYNC1 0x5A

enum {
    CMD_DESCRIBE = 0x01,
    CMD_INFER = 0x02,
    CMD_PROFILE = 0x03,
    CMD_ECHO = 0x04,
    CMD_RESET = 0x05,       /* zero the model's state (tinycomp_reset_state) */
    CMD_TEST_HANG = 0x70,   /* test builds only */
    CMD_TEST_EXIT = 0x71,
    CMD_REPLY = 0x80,
    CMD_ERROR = 0xFF,
};

enum {
    ERR_BAD_CRC = 1,
    ERR_OVERSIZE = 2,
    ERR_TRUNCATED = 3,
    ERR_GARBAGE = 4,
    ERR_UNKNOWN_CMD = 5,
    ERR_BAD_LENGTH = 6,
};

typedef enum { EV_NONE, EV_FRAME, EV_BAD_CRC, EV_OVERSIZE } proto_event_t;

typedef struct {
    uint8_t state;
    uint8_t cmd, seq;
    uint16_t len, pos;
    uint16_t crc, rx_crc;
    uint8_t *buf;
    uint16_t cap;
    uint32_t garbage;   /* bytes dropped while hunting for a frame start */
} proto_parser_t;

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *p, uint32_t n);
void proto_init(proto_parser_t *p, uint8_t *buf, uint16_t cap);
void proto_reset(proto_parser_t *p);
int proto_in_frame(const proto_parser_t *p);
proto_event_t proto_feed(proto_parser_t *p, uint8_t b);

void proto_send_begin(uint8_t cmd, uint8_t seq, uint16_t len);
void proto_send_bytes(const void *data, uint32_t n);
void proto_send_end(void);
void proto_send_error(uint8_t seq, uint8_t code, uint8_t cmd, uint32_t detail);

#endif

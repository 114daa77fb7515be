/* Host runner: per sample, reads every input's bytes (TINYCOMP_INPUT_BYTES_LIST,
 * in the model's order) on stdin and writes every output's bytes on stdout,
 * until end of input. */
#include <stdio.h>
#include <stdlib.h>

#include "tinycomp_model.h"

/* One 8-aligned slot per buffer: float and int16 inputs and outputs. */
#define SLOTS(total, n) (((total) + 8 * (n)) / 8 + 1)
static uint64_t in_store[SLOTS(TINYCOMP_INPUT_BYTES_TOTAL, TINYCOMP_NUM_INPUTS)];
static uint64_t out_store[SLOTS(TINYCOMP_OUTPUT_BYTES_TOTAL, TINYCOMP_NUM_OUTPUTS)];
static const size_t in_bytes[] = TINYCOMP_INPUT_BYTES_LIST;
static const size_t out_bytes[] = TINYCOMP_OUTPUT_BYTES_LIST;

static void slots(uint64_t *store, const size_t *bytes, int n, void **ptrs)
{
    char *p = (char *)store;
    for (int k = 0; k < n; k++) {
        ptrs[k] = p;
        p += (bytes[k] + 7) / 8 * 8;
    }
}

int main(void)
{
    void *ins[TINYCOMP_NUM_INPUTS], *outs[TINYCOMP_NUM_OUTPUTS];
    slots(in_store, in_bytes, TINYCOMP_NUM_INPUTS, ins);
    slots(out_store, out_bytes, TINYCOMP_NUM_OUTPUTS, outs);
    for (;;) {
        for (int k = 0; k < TINYCOMP_NUM_INPUTS; k++) {
            size_t got = fread(ins[k], 1, in_bytes[k], stdin);
            if (got == 0 && k == 0 && feof(stdin)) {
                return 0;
            }
            if (got != in_bytes[k]) {
                fprintf(stderr, "truncated sample: input %d has %zu of %zu bytes\n", k, got, in_bytes[k]);
                return 2;
            }
        }
        TINYCOMP_INVOKE_ARRAYS(ins, outs);
        for (int k = 0; k < TINYCOMP_NUM_OUTPUTS; k++) {
            if (fwrite(outs[k], 1, out_bytes[k], stdout) != out_bytes[k]) {
                return 3;
            }
        }
        if (fflush(stdout) != 0) {
            return 3;
        }
    }
}

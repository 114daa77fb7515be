/* Host runner: reads TINYCOMP_INPUT_SIZE bytes per sample on stdin, writes
 * TINYCOMP_OUTPUT_SIZE bytes per sample on stdout, until end of input. */
#include <stdio.h>
#include <stdlib.h>

#include "tinycomp_model.h"

static int8_t input[TINYCOMP_INPUT_SIZE];
static int8_t output[TINYCOMP_OUTPUT_SIZE];

int main(void)
{
    for (;;) {
        size_t got = fread(input, 1, sizeof input, stdin);
        if (got == 0 && feof(stdin)) {
            return 0;
        }
        if (got != sizeof input) {
            fprintf(stderr, "truncated sample: %zu of %zu bytes\n", got, sizeof input);
            return 2;
        }
        tinycomp_invoke(input, output);
        if (fwrite(output, 1, sizeof output, stdout) != sizeof output || fflush(stdout) != 0) {
            return 3;
        }
    }
}

/* Run a graphc bundle from C: no Python, only model.o, model.h, weights.bin and libm.
 *
 *   graphc export examples/mlp.gir -o mlp_bundle
 *   cc -std=c99 -O2 -I mlp_bundle examples/export_c/main.c mlp_bundle/model.o -lm
 *      (add -lpthread with a C library older than glibc 2.34)
 *   ./a.out mlp_bundle 4            # symbol values (here N = 4), in GRAPHC_SYMBOL_NAMES order
 *   ./a.out mlp_bundle 4 -i x.bin   # inputs from a file: raw little-endian, concatenated
 *
 * Without -i every input is generated deterministically: element i of input k is
 * ((i * 7919 + k * 104729) % 1000) / 1000.0 - 0.5 (floats) or (i + k) % 2 (integers).
 * Threads: GRAPHC_NUM_THREADS, else the number of online CPUs.
 * Prints each output as "output NAME ELEMS" followed by one value per line.
 * This file only uses model.h's macros, so it runs any bundle.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

static size_t dtype_bytes(int code) {
    switch (code) {
    case GRAPHC_DTYPE_F64: case GRAPHC_DTYPE_I64: return 8;
    case GRAPHC_DTYPE_BOOL: return 1;
    default: return 4;
    }
}

static void *aligned(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static void *read_file(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    void *buf = aligned(want);
    size_t got;
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    got = fread(buf, 1, want, f);
    fclose(f);
    if (got != want) {
        fprintf(stderr, "%s: expected %zu bytes, found %zu\n", path, want, got);
        exit(1);
    }
    return buf;
}

static void fill_input(void *data, int code, int64_t n, int k) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = (double)((i * 7919 + (int64_t)k * 104729) % 1000) / 1000.0 - 0.5;
        int64_t b = (i + k) % 2;
        switch (code) {
        case GRAPHC_DTYPE_F32: ((float *)data)[i] = (float)v; break;
        case GRAPHC_DTYPE_F64: ((double *)data)[i] = v; break;
        case GRAPHC_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)b; break;
        case GRAPHC_DTYPE_I64: ((int64_t *)data)[i] = b; break;
        default: ((uint8_t *)data)[i] = (uint8_t)b; break;
        }
    }
}

static void print_output(const char *name, const void *data, int code, int64_t n) {
    int64_t i;
    printf("output %s %lld\n", name, (long long)n);
    for (i = 0; i < n; i++) {
        switch (code) {
        case GRAPHC_DTYPE_F32: printf("%.9g\n", (double)((const float *)data)[i]); break;
        case GRAPHC_DTYPE_F64: printf("%.17g\n", ((const double *)data)[i]); break;
        case GRAPHC_DTYPE_I32: printf("%d\n", (int)((const int32_t *)data)[i]); break;
        case GRAPHC_DTYPE_I64: printf("%lld\n", (long long)((const int64_t *)data)[i]); break;
        default: printf("%d\n", (int)((const uint8_t *)data)[i]); break;
        }
    }
}

int main(int argc, char **argv) {
    int64_t s[GRAPHC_NUM_SYMBOLS_ALLOC] = {0};
    const char *input_names[] = GRAPHC_INPUT_NAMES;
    const char *output_names[] = GRAPHC_OUTPUT_NAMES;
    const int input_dtypes[] = GRAPHC_INPUT_DTYPES;
    const int output_dtypes[] = GRAPHC_OUTPUT_DTYPES;
    const int64_t param_offsets[] = GRAPHC_PARAM_OFFSETS;
    void *args[GRAPHC_ARG_COUNT];
    int64_t errinfo[GRAPHC_ERRINFO_WORDS] = {0};
    const char *dir, *input_path = NULL, *env;
    char path[4096];
    unsigned char *weights, *inputs_blob = NULL;
    size_t at = 0;
    int k, argi = 2, threads;
    int32_t status;

    if (argc < 2 + GRAPHC_NUM_SYMBOLS) {
        fprintf(stderr, "usage: %s BUNDLE_DIR", argv[0]);
        for (k = 0; k < GRAPHC_NUM_SYMBOLS; k++) {
            const char *names[] = GRAPHC_SYMBOL_NAMES;
            fprintf(stderr, " %s", names[k]);
        }
        fprintf(stderr, " [-i INPUTS.bin]\n");
        return 2;
    }
    dir = argv[1];
    for (k = 0; k < GRAPHC_NUM_SYMBOLS; k++)
        s[k] = strtoll(argv[argi++], NULL, 10);
    if (!GRAPHC_SYMBOLS_VALID(s)) {      /* native code trusts its caller: check here */
        fprintf(stderr, "symbol values out of range for this model (see model.h)\n");
        return 2;
    }
    if (argi + 1 < argc && strcmp(argv[argi], "-i") == 0)
        input_path = argv[argi + 1];

    env = getenv("GRAPHC_NUM_THREADS");
    threads = env && atoi(env) > 0 ? atoi(env) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    threads = graphc_init(threads);
    fprintf(stderr, "threads: %d\n", threads);

    snprintf(path, sizeof path, "%s/weights.bin", dir);
    weights = read_file(path, GRAPHC_WEIGHTS_BYTES);
    for (k = 0; k < GRAPHC_NUM_PARAMS; k++)
        args[GRAPHC_NUM_INPUTS + GRAPHC_NUM_OUTPUTS + k] = weights + param_offsets[k];

    {
        const int64_t in_sizes[] = GRAPHC_INPUT_SIZES(s);
        size_t total = 0;
        for (k = 0; k < GRAPHC_NUM_INPUTS; k++)
            total += (size_t)in_sizes[k] * dtype_bytes(input_dtypes[k]);
        if (input_path)
            inputs_blob = read_file(input_path, total);
        for (k = 0; k < GRAPHC_NUM_INPUTS; k++) {
            size_t bytes = (size_t)in_sizes[k] * dtype_bytes(input_dtypes[k]);
            void *buf = aligned(bytes);
            if (inputs_blob)
                memcpy(buf, inputs_blob + at, bytes);
            else
                fill_input(buf, input_dtypes[k], in_sizes[k], k);
            at += bytes;
            args[k] = buf;
        }
        (void)input_names;
    }
    {
        const int64_t out_sizes[] = GRAPHC_OUTPUT_SIZES(s);
        for (k = 0; k < GRAPHC_NUM_OUTPUTS; k++)
            args[GRAPHC_NUM_INPUTS + k] =
                aligned((size_t)out_sizes[k] * dtype_bytes(output_dtypes[k]));
        args[GRAPHC_ARG_ARENA] = aligned((size_t)graphc_arena_bytes(s));
        args[GRAPHC_ARG_ERRINFO] = errinfo;

        status = graphc_entry(args, s);
        if (status != 0) {
            fprintf(stderr, "graphc_entry failed at node %d (kind %lld, value %lld, bound %lld, "
                    "axis %lld)\n", status - 1, (long long)errinfo[0], (long long)errinfo[1],
                    (long long)errinfo[2], (long long)errinfo[3]);
            return 1;
        }
        for (k = 0; k < GRAPHC_NUM_OUTPUTS; k++)
            print_output(output_names[k], args[GRAPHC_NUM_INPUTS + k], output_dtypes[k],
                         out_sizes[k]);
    }
    return 0;
}

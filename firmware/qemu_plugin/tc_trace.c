/* tinycomp's QEMU plugin: the instruction stream of one profiled inference,
 * summarised for the cycle estimator (tinycomp/cycles/).
 *
 * Runs inside qemu-system-arm on the host, never on the target. Phases are
 * counted by entries into the firmware's layer marker (fw_layer_mark, called
 * with 0..N around the N layers): phase k runs from the k-th marker entry to
 * the next, so phases 1..N are the layers. For every translated block it
 * records, per phase:
 *   - executions, and how often the next executed block started at this
 *     block's fall-through address (so its final branch was not taken);
 *   - per instruction: data reads from flash, how many of them missed a small
 *     LRU model of the flash data cache, and unaligned accesses.
 * When the last marker is reached the summary is written to out= and
 * counting stops (QEMU is killed afterwards, so no exit hook would run).
 *
 * Arguments: out=PATH mark=HEXADDR marks=N flash=HEXLO:HEXHI
 *            dlines=LINES dline=BYTES (data cache model; dlines=0: none)
 *
 * Blocks are single-threaded here: the Cortex-M machines have one vCPU. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_qemu_plugin.h"

TC_EXPORT int qemu_plugin_version = 1;

#define MAX_DLINES 64

struct insn_rec {
    uint64_t vaddr;
    uint32_t size;
    uint64_t *flash, *miss, *unaligned;   /* per phase */
};

struct tb_rec {
    uint64_t vaddr, end;
    size_t n;
    int is_mark;
    uint64_t *exec, *fall;                /* per phase */
    struct insn_rec *insns;
    struct tb_rec *next;                  /* list of all blocks, for the dump */
};

static struct tb_rec *all_tbs;
static const char *out_path;
static uint64_t mark_addr, flash_lo, flash_hi;
static unsigned nphases;                  /* = number of marker calls */
static unsigned phase, done;
static struct tb_rec *prev;
static unsigned prev_phase;

static unsigned dlines, dline_shift;
static uint64_t dtag[MAX_DLINES], dage[MAX_DLINES], dclock;

static uint64_t *counters(void)
{
    uint64_t *p = calloc(nphases, sizeof *p);
    if (!p) {
        qemu_plugin_outs("tc_trace: out of memory\n");
        abort();
    }
    return p;
}

/* Fully associative, least recently used: the flash data cache model. */
static int dcache_miss(uint64_t addr)
{
    if (dlines == 0)
        return 1;
    uint64_t tag = (addr >> dline_shift) + 1;   /* +1: 0 marks an empty line */
    unsigned victim = 0;
    dclock++;
    for (unsigned i = 0; i < dlines; i++) {
        if (dtag[i] == tag) {
            dage[i] = dclock;
            return 0;
        }
        if (dage[i] < dage[victim])
            victim = i;
    }
    dtag[victim] = tag;
    dage[victim] = dclock;
    return 1;
}

static void dump(void)
{
    FILE *f = fopen(out_path, "w");
    if (!f) {
        qemu_plugin_outs("tc_trace: cannot write the trace file\n");
        return;
    }
    fprintf(f, "phases %u\n", nphases);
    for (struct tb_rec *t = all_tbs; t; t = t->next) {
        uint64_t any = 0;
        for (unsigned p = 1; p < nphases; p++)
            any |= t->exec[p];
        if (!any)
            continue;   /* phase 0 (boot, serial, before the first layer) is not reported */
        fprintf(f, "tb %" PRIx64 " %" PRIx64 " %zu", t->vaddr, t->end, t->n);
        for (unsigned p = 0; p < nphases; p++)
            fprintf(f, " %" PRIu64, t->exec[p]);
        for (unsigned p = 0; p < nphases; p++)
            fprintf(f, " %" PRIu64, t->fall[p]);
        fputc('\n', f);
        for (size_t i = 0; i < t->n; i++) {
            struct insn_rec *r = &t->insns[i];
            fprintf(f, "in %" PRIx64 " %u", r->vaddr, r->size);
            for (unsigned p = 0; p < nphases; p++)
                fprintf(f, " %" PRIu64, r->flash[p]);
            for (unsigned p = 0; p < nphases; p++)
                fprintf(f, " %" PRIu64, r->miss[p]);
            for (unsigned p = 0; p < nphases; p++)
                fprintf(f, " %" PRIu64, r->unaligned[p]);
            fputc('\n', f);
        }
    }
    fputs("end\n", f);
    fclose(f);
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    struct tb_rec *t = udata;
    (void)vcpu;
    if (done)
        return;
    if (prev && prev->end == t->vaddr)
        prev->fall[prev_phase]++;
    if (t->is_mark && ++phase >= nphases) {
        done = 1;
        dump();
        return;
    }
    t->exec[phase]++;
    prev = t;
    prev_phase = phase;
}

static void mem_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    struct insn_rec *r = udata;
    (void)vcpu;
    if (done)
        return;
    unsigned shift = qemu_plugin_mem_size_shift(info);
    if (vaddr & ((1u << shift) - 1))
        r->unaligned[phase]++;
    if (!qemu_plugin_mem_is_store(info) && vaddr >= flash_lo && vaddr < flash_hi) {
        r->flash[phase]++;
        if (dcache_miss(vaddr))
            r->miss[phase]++;
    }
}

/* QEMU 7.2 can report more bytes than the instruction has (the Thumb
 * translator peeks at the next halfword), so the size comes from the first
 * halfword: 0b11101, 0b11110 and 0b11111 in its top bits start a 32-bit
 * Thumb-2 instruction, anything else is 16-bit. */
static uint32_t thumb_size(const struct qemu_plugin_insn *insn)
{
    const uint8_t *b = qemu_plugin_insn_data(insn);
    if (qemu_plugin_insn_size(insn) < 2)
        return (uint32_t)qemu_plugin_insn_size(insn);
    unsigned hw = b[0] | (unsigned)b[1] << 8;
    return (hw & 0xF800u) >= 0xE800u ? 4 : 2;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    struct tb_rec *t = calloc(1, sizeof *t);
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (!t || !(t->insns = calloc(n ? n : 1, sizeof *t->insns))) {
        qemu_plugin_outs("tc_trace: out of memory\n");
        abort();
    }
    t->vaddr = qemu_plugin_tb_vaddr(tb);
    t->n = n;
    t->is_mark = t->vaddr == mark_addr;
    t->exec = counters();
    t->fall = counters();
    uint64_t end = t->vaddr;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        struct insn_rec *r = &t->insns[i];
        r->vaddr = qemu_plugin_insn_vaddr(insn);
        r->size = thumb_size(insn);
        r->flash = counters();
        r->miss = counters();
        r->unaligned = counters();
        end = r->vaddr + r->size;
        qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, r);
    }
    t->end = end;
    t->next = all_tbs;
    all_tbs = t;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
}

static int arg(const char *a, const char *key, const char **value)
{
    size_t k = strlen(key);
    if (strncmp(a, key, k) == 0 && a[k] == '=') {
        *value = a + k + 1;
        return 1;
    }
    return 0;
}

TC_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *v;
    unsigned dline = 32;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (arg(argv[i], "out", &v))
            out_path = v;
        else if (arg(argv[i], "mark", &v))
            mark_addr = strtoull(v, NULL, 16);
        else if (arg(argv[i], "marks", &v))
            nphases = (unsigned)strtoul(v, NULL, 10);
        else if (arg(argv[i], "flash", &v)) {
            char *colon;
            flash_lo = strtoull(v, &colon, 16);
            flash_hi = *colon == ':' ? strtoull(colon + 1, NULL, 16) : flash_lo;
        } else if (arg(argv[i], "dlines", &v))
            dlines = (unsigned)strtoul(v, NULL, 10);
        else if (arg(argv[i], "dline", &v))
            dline = (unsigned)strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "tc_trace: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (!out_path || !mark_addr || nphases < 2 || dlines > MAX_DLINES || dline == 0
        || (dline & (dline - 1))) {
        fprintf(stderr, "tc_trace: needs out=, mark=, marks>=2, dlines<=%d, dline a power of two\n",
                MAX_DLINES);
        return -1;
    }
    while ((1u << dline_shift) < dline)
        dline_shift++;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    return 0;
}

/* core/fiber_aarch64.S - the context switch for AArch64 (AAPCS64, ELF).
 *
 * Same protocol as core/fiber_x86_64.S: a suspended context is its stack
 * pointer, and the registers AAPCS64 makes callee-saved are stored in one
 * frame on its own stack (addresses grow up; the saved sp points at 0):
 *
 *     0x00  d8  d9      0x40  x19 x20     0x80  x27 x28
 *     0x10  d10 d11     0x50  x21 x22     0x90  x29 (fp) x30 (lr)
 *     0x20  d12 d13     0x60  x23 x24     0xa0  fpcr, 8 bytes padding
 *     0x30  d14 d15     0x70  x25 x26
 *
 * Only the low 64 bits of v8-v15 are callee-saved in AAPCS64, hence d8-d15.
 * FPCR (rounding mode, flush-to-zero) is kept per context like MXCSR on
 * x86_64; it is written back only when it differs, because an FPCR write can
 * be a serialising operation on some cores while reading it is cheap.
 *
 * corio__fiber_asm_switch(save_sp = x0, to_sp = x1, value = x2) stores the
 * frame, saves sp into *save_sp, loads to_sp, restores and returns @value in
 * x0 through the restored lr. The layout and the x19-holds-entry trick
 * follow boost.context's jump_/make_arm64_aapcs_elf_gas.S.
 *
 * corio__fiber_asm_make(stack_top = x0, entry = x1) builds a frame under the
 * 16-byte aligned top with x19 = entry, x29 = 0, x30 = corio__fiber_start and
 * the creator's FPCR. The first switch "returns" into corio__fiber_start
 * with sp at the aligned top and x0 = value; it calls entry(value, top) with
 * blr, so entry starts exactly as if called (x1 is the aligned top that
 * fiber.c's sanitizer trampoline reads; a one-argument entry ignores it).
 * corio__fiber_start's CFI marks the return address undefined and fp is 0,
 * so unwinders stop there. The frame takes 0xb0 bytes, within fiber.h's
 * promise of 256.
 *
 * BTI: both entry points begin with "bti c" when the compiler builds with
 * branch protection; corio__fiber_start is reached by ret, which needs no
 * landing pad. No GCS (shadow stack) marking, for the same reason as CET
 * shadow stacks on x86_64: a stack switch needs its own token protocol.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define CORIO_BTI_C hint #34
#else
#define CORIO_BTI_C
#endif

    .arch   armv8-a
    .text

    .globl  corio__fiber_asm_switch
    .hidden corio__fiber_asm_switch
    .type   corio__fiber_asm_switch, %function
    .p2align 4
corio__fiber_asm_switch:
    .cfi_startproc
    CORIO_BTI_C
    sub     sp, sp, #0xb0
    .cfi_def_cfa_offset 0xb0
    stp     d8,  d9,  [sp, #0x00]
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40]
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, x30, [sp, #0x90]
    .cfi_offset x19, -0x70
    .cfi_offset x20, -0x68
    .cfi_offset x21, -0x60
    .cfi_offset x22, -0x58
    .cfi_offset x23, -0x50
    .cfi_offset x24, -0x48
    .cfi_offset x25, -0x40
    .cfi_offset x26, -0x38
    .cfi_offset x27, -0x30
    .cfi_offset x28, -0x28
    .cfi_offset x29, -0x20
    .cfi_offset x30, -0x18
    mrs     x9, fpcr
    str     x9, [sp, #0xa0]

    /* The switch proper. str cannot take sp as its source register. */
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1

    /* @to's frame has the layout just saved, so the CFI above still
     * describes it. */
    ldp     d8,  d9,  [sp, #0x00]
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40]
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    ldp     x29, x30, [sp, #0x90]
    ldr     x9, [sp, #0xa0]
    mrs     x10, fpcr
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x9
1:
    mov     x0, x2
    add     sp, sp, #0xb0
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   corio__fiber_asm_switch, .-corio__fiber_asm_switch

    .globl  corio__fiber_asm_make
    .hidden corio__fiber_asm_make
    .type   corio__fiber_asm_make, %function
    .p2align 4
corio__fiber_asm_make:
    .cfi_startproc
    CORIO_BTI_C
    and     x0, x0, #~0xf
    sub     x0, x0, #0xb0
    /* Zero the whole frame so a new context starts from known registers. */
    stp     xzr, xzr, [x0, #0x00]
    stp     xzr, xzr, [x0, #0x10]
    stp     xzr, xzr, [x0, #0x20]
    stp     xzr, xzr, [x0, #0x30]
    stp     xzr, xzr, [x0, #0x40]
    stp     xzr, xzr, [x0, #0x50]
    stp     xzr, xzr, [x0, #0x60]
    stp     xzr, xzr, [x0, #0x70]
    stp     xzr, xzr, [x0, #0x80]
    stp     xzr, xzr, [x0, #0xa0]
    str     x1, [x0, #0x40]             /* x19: the entry */
    adr     x9, corio__fiber_start
    stp     xzr, x9, [x0, #0x90]        /* x29 = 0 ends frame chains; lr */
    mrs     x9, fpcr
    str     x9, [x0, #0xa0]
    ret
    .cfi_endproc
    .size   corio__fiber_asm_make, .-corio__fiber_asm_make

    /* Reached only by the ret of the first asm_switch into a made context:
     * sp is the aligned stack top, x0 the switch's value. */
    .type   corio__fiber_start, %function
    .p2align 4
corio__fiber_start:
    .cfi_startproc
    .cfi_undefined x30
    mov     x1, sp
    blr     x19
    /* entry must end with corio__fiber_switch_final(); returning is a bug
     * in the caller, so trap here (the same brk __builtin_trap() emits). */
    brk     #1000
    .cfi_endproc
    .size   corio__fiber_start, .-corio__fiber_start

    .section .note.GNU-stack, "", %progbits

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .long   4                       /* name size */
    .long   16                      /* descriptor size */
    .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4
    .long   1                       /* BTI */
    .long   0
    .popsection
#endif

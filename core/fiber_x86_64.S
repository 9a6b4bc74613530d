/* core/fiber_x86_64.S - the context switch for x86_64 System V (ELF).
 *
 * A suspended context is nothing but its stack pointer. Everything the SysV
 * ABI asks a callee to preserve lives on the context's own stack, in this
 * frame (addresses grow up; the saved stack pointer points at offset 0):
 *
 *      0   MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes unused
 *      8   r15
 *     16   r14
 *     24   r13
 *     32   r12
 *     40   rbx
 *     48   rbp
 *     56   return address
 *
 * The MXCSR and x87 control words are callee-saved "control bits" in the
 * ABI; saving them lets one task change its rounding mode without leaking it
 * into whatever runs next on the thread. Status flags are not preserved, as
 * for any call. Saving them is cheap; loading them (ldmxcsr, fldcw) costs
 * more than the rest of the switch, so they are reloaded only when the
 * resumed context's words differ from the running one's, which they almost
 * never do (measured: ~12.2 ns one-way with unconditional reloads, ~11.7 ns
 * with the compare, ~9.9 ns saving nothing; a loaded 2-vCPU Xeon VM).
 *
 * corio__fiber_asm_switch(save_sp, to_sp, value) is called like any
 * function: the compiler already assumes every caller-saved register dies, so
 * only the frame above is pushed. It returns @value in rax on the other side:
 * the context it resumes sees its own earlier call to asm_switch return.
 *
 * corio__fiber_asm_make(stack_top, entry) builds, just below the 16-byte
 * aligned @stack_top, a frame that asm_switch can "return" into: rbp = 0,
 * r12 = entry, the creator's FP control words, and corio__fiber_start as the
 * return address. That ret lands in corio__fiber_start with rsp at the
 * aligned top, which calls entry(value, stack_top): rdi is the value of the
 * first switch, rsi the aligned top (fiber.c's sanitizer trampoline finds the
 * user's entry there; a one-argument entry ignores it). The call leaves rsp
 * 16-byte aligned at the call, exactly as a C caller would. corio__fiber_start
 * marks its return address undefined in its CFI and rbp is 0, so both DWARF
 * and frame-pointer unwinders stop there instead of walking off the stack.
 * The frame takes 64 bytes below the top: within fiber.h's promise of 256.
 *
 * No CET shadow-stack marking: switching stacks under a hardware shadow
 * stack would need its own token protocol, so the object only advertises IBT
 * (both entry points start with endbr64 when the compiler builds with CET).
 */

#if defined(__CET__) && (__CET__ & 1)
#define CORIO_ENDBR endbr64
#else
#define CORIO_ENDBR
#endif

    .text

    .globl  corio__fiber_asm_switch
    .hidden corio__fiber_asm_switch
    .type   corio__fiber_asm_switch, @function
    .p2align 4
corio__fiber_asm_switch:
    .cfi_startproc
    CORIO_ENDBR
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    leaq    -8(%rsp), %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movl    (%rsp), %r8d
    movzwl  4(%rsp), %r9d

    /* The switch proper: from here on we run on @to's stack. */
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp

    /* @to's frame has the layout just saved, so the CFI above still
     * describes where its registers and return address are.
     * Reload the control words only when they differ (see the essay). MXCSR
     * bits 0-5 are sticky status flags, which the ABI does not preserve
     * across calls, so they are left out of the comparison. */
    xorl    (%rsp), %r8d
    testl   $0xffc0, %r8d
    jnz     2f
    cmpw    4(%rsp), %r9w
    jne     3f
1:
    .cfi_remember_state
    leaq    8(%rsp), %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    movq    %rdx, %rax
    ret
    /* Out of line: the control words differ. Same frame as at 1b. */
    .cfi_restore_state
2:
    ldmxcsr (%rsp)
3:
    fldcw   4(%rsp)
    jmp     1b
    .cfi_endproc
    .size   corio__fiber_asm_switch, .-corio__fiber_asm_switch

    .globl  corio__fiber_asm_make
    .hidden corio__fiber_asm_make
    .type   corio__fiber_asm_make, @function
    .p2align 4
corio__fiber_asm_make:
    .cfi_startproc
    CORIO_ENDBR
    movq    %rdi, %rax
    andq    $-16, %rax
    leaq    -64(%rax), %rax
    movq    $0, (%rax)
    stmxcsr (%rax)
    fnstcw  4(%rax)
    movq    $0, 8(%rax)             /* r15 */
    movq    $0, 16(%rax)            /* r14 */
    movq    $0, 24(%rax)            /* r13 */
    movq    %rsi, 32(%rax)          /* r12: the entry */
    movq    $0, 40(%rax)            /* rbx */
    movq    $0, 48(%rax)            /* rbp: ends frame-pointer chains */
    leaq    corio__fiber_start(%rip), %rcx
    movq    %rcx, 56(%rax)
    ret
    .cfi_endproc
    .size   corio__fiber_asm_make, .-corio__fiber_asm_make

    /* Reached only by the ret of the first asm_switch into a made context,
     * never called: rsp is the aligned stack top, rax the switch's value. */
    .type   corio__fiber_start, @function
    .p2align 4
corio__fiber_start:
    .cfi_startproc
    .cfi_undefined %rip
    movq    %rax, %rdi
    movq    %rsp, %rsi
    call    *%r12
    /* entry must end with corio__fiber_switch_final(); returning is a bug
     * in the caller, so stop right here with an invalid-opcode trap. */
    ud2
    .cfi_endproc
    .size   corio__fiber_start, .-corio__fiber_start

    .section .note.GNU-stack, "", @progbits

#if defined(__CET__) && (__CET__ & 1)
    .section .note.gnu.property, "a"
    .p2align 3
    .long   4                       /* name size */
    .long   16                      /* descriptor size */
    .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002              /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4
    .long   1                       /* IBT only: see the essay on shadow stacks */
    .p2align 3
#endif

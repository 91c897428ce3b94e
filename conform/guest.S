/*
 * dirtyproof's dirtying guest: a multiboot kernel that rewrites a hot set of pages forever.
 *
 * Every pass P (P = 1, 2, ...) writes two words at the start of every 4 KiB page of
 * [START, START+SIZE): the pass number P and P XOR the page's address. Before it overwrites a page
 * it checks that the page still holds pass P-1's pattern; a page that does not (a page lost or
 * torn by a migration) makes the guest print 'X' and the page address on port 0xe9, then halt.
 * So the guest checks itself after it resumes on the destination, and a memory dump of either
 * side can be checked against the pattern. Every PASSES_PER_DOT passes it prints '.'.
 *
 * Assembler symbols (as --defsym): START, SIZE (bytes, multiples of 4096), DELAY (spin
 * iterations after each page: the dirty rate), PASSES_PER_DOT, CHECK (1: check before each
 * write; 0: only write, the plain dirtier of ../shared/docs/realqemu.md).
 */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010000          /* the header's address fields give the load layout */
    .set LOAD_ADDR, 0x00100000
    .set PAGE, 4096
    .set DEBUGCON, 0xe9

    .section .text
    .globl _start
    .code32
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header                    /* header_addr */
    .long LOAD_ADDR                    /* load_addr */
    .long 0                            /* load_end_addr: the whole file */
    .long 0                            /* bss_end_addr: no bss */
    .long _start                       /* entry_addr */

_start:
    cli
    movl $0x0009F000, %esp             /* a stack below 640 KiB */
    movl $1, %ebx                      /* ebx: the pass number */
    xorl %edi, %edi                    /* edi: passes since the last dot */

pass:
    movl $START, %esi                  /* esi: the page being written */
page:
.if CHECK
    cmpl $1, %ebx
    je write                           /* pass 1: memory holds no pattern yet */
    leal -1(%ebx), %eax                /* pass P-1's pattern */
    cmpl %eax, (%esi)
    jne lost
    xorl %esi, %eax
    cmpl %eax, 4(%esi)
    jne lost
.endif
write:
    movl %ebx, (%esi)
    movl %ebx, %eax
    xorl %esi, %eax
    movl %eax, 4(%esi)
    movl $DELAY, %ecx
spin:
    testl %ecx, %ecx
    jz next
    decl %ecx
    jmp spin
next:
    addl $PAGE, %esi
    cmpl $(START + SIZE), %esi
    jb page
    incl %ebx
    incl %edi
    cmpl $PASSES_PER_DOT, %edi
    jb pass
    xorl %edi, %edi
    movb $'.', %al
    outb %al, $DEBUGCON
    jmp pass

lost:                                  /* print 'X', the page address in hex, a newline; halt */
    movb $'X', %al
    outb %al, $DEBUGCON
    movl $8, %ecx
hexdigit:
    roll $4, %esi
    movl %esi, %eax
    andl $0xf, %eax
    movb hexchars(%eax), %al
    outb %al, $DEBUGCON
    decl %ecx
    jnz hexdigit
    movb $'\n', %al
    outb %al, $DEBUGCON
halt:
    hlt
    jmp halt

hexchars:
    .ascii "0123456789abcdef"

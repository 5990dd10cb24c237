; Bare-metal benchmark kernel (Multiboot, 32-bit flat): integer ALU, loads/stores, calls,
; a small REP MOVSD and a checksum printed on COM1 (0x3F8). Data lives in .bss, pages away
; from the code, so writes never hit a code page. Assembled and linked at bench time.
        bits    32
        section .multiboot
        align   4
        dd      0x1BADB002              ; magic [Multiboot 0.6.96 §3.1.1]
        dd      0                       ; flags
        dd      -0x1BADB002             ; checksum

        section .text
        global  _start
ITER    equ     150000

_start: mov     esp, stack_top
        mov     ebp, ITER
        xor     edx, edx
.outer: mov     ecx, 64
        mov     esi, buf
.inner: mov     eax, [esi]
        add     eax, ecx
        imul    eax, eax, 33
        xor     eax, 0x5A5A
        shr     eax, 3
        mov     [esi], eax
        add     esi, 4
        dec     ecx
        jnz     .inner
        call    mix
        mov     esi, buf
        mov     edi, buf2
        mov     ecx, 64
        cld
        rep movsd
        dec     ebp
        jnz     .outer
        ; checksum of buf2 -> COM1 as 8 hex digits
        mov     esi, buf2
        mov     ecx, 64
        xor     eax, eax
.sum:   add     eax, [esi]
        rol     eax, 5
        add     esi, 4
        loop    .sum
        mov     ebx, eax
        mov     ecx, 8
.hex:   rol     ebx, 4
        mov     eax, ebx
        and     eax, 15
        mov     al, [hexdig + eax]
        mov     dx, 0x3F8
        out     dx, al
        loop    .hex
        mov     al, 10
        out     dx, al
        cli
.halt:  hlt
        jmp     .halt

mix:    push    ebx
        mov     ebx, [buf + 8]
        lea     eax, [ebx + ebx*4 + 7]
        cmp     eax, edx
        jb      .lt
        sub     eax, edx
.lt:    mov     edx, eax
        and     edx, 0xFFFF
        pop     ebx
        ret

        section .rodata
hexdig: db      "0123456789ABCDEF"

        section .bss
        alignb  4096
buf:    resd    64
        alignb  4096
buf2:   resd    64
        alignb  16
        resb    8192
stack_top:

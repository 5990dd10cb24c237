; A minimal Multiboot kernel: checks the boot state of [Multiboot 0.6.96 §3.2] and prints on
; port 0xE9 ("MB OK" + mem_upper in hex) and one byte on port 0x190, then halts.
        bits    32
        section .multiboot
        align   4
        dd      0x1BADB002
        dd      0
        dd      -0x1BADB002
        section .text
        global  _start
_start: mov     esp, 0x90000            ; the boot state leaves ESP undefined
        cmp     eax, 0x2BADB002
        jne     bad
        mov     eax, cr0
        test    al, 1                   ; protected mode
        jz      bad
        mov     esi, ok
        call    puts
        mov     eax, [ebx + 8]          ; mem_upper (KiB above 1 MiB)
        mov     ecx, 8
.hex:   rol     eax, 4
        mov     edx, eax
        and     edx, 15
        mov     dl, [digits + edx]
        xchg    eax, edx
        out     0xE9, al
        xchg    eax, edx
        loop    .hex
        mov     al, '!'
        mov     dx, 0x190
        out     dx, al
        cli
        hlt
bad:    mov     esi, fail
        call    puts
        cli
        hlt
puts:   lodsb
        test    al, al
        jz      .d
        out     0xE9, al
        jmp     puts
.d:     ret
        section .rodata
ok:     db      "MB OK ", 0
fail:   db      "MB BAD", 0
digits: db      "0123456789ABCDEF"

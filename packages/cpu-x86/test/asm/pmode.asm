; Protected mode, paging (2-level and PAE), rings, gates, TSS and the I/O bitmap, as a 64 KiB
; ROM image (reset vector at F000:FFF0). Results go to the debug port 0xE9 as text; port 0xF4
; (QEMU isa-debug-exit) ends a QEMU run, HLT ends an x86run run. Built by nasm at test time.
; Only RAM below 1 MiB (except the ROM shadow) is written, so QEMU and x86run see the same.

        cpu     686
        org     0xF0000

RECOVER equ 0x500               ; where the fault handler continues
GDT     equ 0x1000
IDT     equ 0x2000
TSS     equ 0x3000
PD      equ 0x6000
PT0     equ 0x7000
PDPT    equ 0x9000
PAEPD   equ 0xA000
PAEPT   equ 0xB000
KSTACK  equ 0x20000
USTACK  equ 0x30000

        bits    16
start16:
        cli
        cld
        xor     ax, ax
        mov     es, ax
        mov     ax, 0xF000
        mov     ds, ax
        mov     si, gdt_rom - 0xF0000
        mov     di, GDT
        mov     cx, gdt_end - gdt_rom
        rep movsb
        xor     ax, ax
        mov     ds, ax
        o32 lgdt [gdt_ptr_ram]
        mov     word [gdt_ptr_ram], gdt_end - gdt_rom - 1
        mov     dword [gdt_ptr_ram + 2], GDT
        o32 lgdt [gdt_ptr_ram]
        mov     eax, cr0
        or      eax, 1
        mov     cr0, eax
        jmp     dword 0x08:pm32
gdt_ptr_ram equ 0x600

        bits    32
%include "common.inc"
%macro SHOW 1                    ; label, then eax in hex
        SAY     %1
        call    phex
        mov     al, 10
        call    putc
%endmacro

; ---------------------------------------------------------------- exceptions
%assign v 0
%rep 20
        STUB    v
%assign v v+1
%endrep

exc_common: mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        SAY     "EXC "
        mov     eax, [esp]
        call    phex
        SAY     " err="
        mov     eax, [esp + 4]
        call    phex
        SAY     " eip="
        mov     eax, [esp + 8]
        call    phex
        SAY     " cpl="
        mov     eax, [esp + 12]
        and     eax, 3
        call    phex
        cmp     dword [esp], 14
        jne     .nocr2
        SAY     " cr2="
        mov     eax, cr2
        call    phex
.nocr2: mov     al, 10
        call    putc
        mov     esp, KSTACK
        jmp     [RECOVER]

; int 0x80 from ring 3: show the privilege of the interrupted code and of the handler
int80:  push    eax
        SAY     "INT80 from cs="
        mov     eax, [esp + 8]
        call    phex
        SAY     " ss="
        mov     eax, [esp + 20]
        call    phex
        SAY     " handler cs="
        mov     eax, cs
        call    phex
        mov     al, 10
        call    putc
        pop     eax
        iretd

; call gate target (ring 0), called from ring 3 with one parameter
gate0:  SAY     "GATE cs="
        mov     eax, cs
        call    phex
        SAY     " param="
        mov     eax, [esp + 8]
        call    phex
        SAY     " retcs="
        mov     eax, [esp + 4]
        call    phex
        mov     al, 10
        call    putc
        retf    4


; ---------------------------------------------------------------- main
pm32:   mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     esp, KSTACK
        ; IDT: interrupt gates for 0-19, a DPL3 trap gate for 0x80
        mov     edi, IDT
        xor     eax, eax
        mov     ecx, 512
        rep stosd
%assign v 0
%rep 20
        SETGATE v, stub_ %+ v, 0x8E
%assign v v+1
%endrep
        SETGATE 0x80, int80, 0xEF
        mov     word [0x608], 0x7FF
        mov     dword [0x60A], IDT
        lidt    [0x608]
        SAY     {"PM OK", 10}

        ; -- flags of a few operations
        mov eax, 0x7fffffff
        add eax, 1
        pushfd
        pop eax
        and eax, 0x8d5
        SHOW    "add ovf "
        mov eax, 1
        sub eax, 2
        pushfd
        pop eax
        and eax, 0x8d5
        SHOW    "sub brw "
        mov eax, 0x10000
        imul eax, eax
        pushfd
        pop eax
        and eax, 0x801
        SHOW    "imul    "
        mov eax, 0x80000001
        mov edx, 0xF0000000
        shld eax, edx, 4
        SHOW    "shld    "
        mov edx, 0x00801000
        bsr eax, edx
        SHOW    "bsr     "
        mov eax, 5
        mov ecx, 5
        mov edx, 9
        cmpxchg ecx, edx
        mov eax, ecx
        SHOW    "cmpxchg "
        mov eax, 0x11223344
        bswap eax
        SHOW    "bswap   "
        pushfd
        pop eax
        xor eax, 0x200000
        push eax
        popfd
        pushfd
        pop eax
        and eax, 0x200000
        SHOW    "id flag "

        ; -- exceptions with error codes
        mov     dword [RECOVER], .a1
        ud2
.a1:    mov     dword [RECOVER], .a2
        xor     edx, edx
        xor     ecx, ecx
        div     ecx
.a2:    mov     dword [RECOVER], .a3
        mov     ax, 0x48                ; beyond the GDT limit
        mov     ds, ax
.a3:    mov     ax, 0x10
        mov     ds, ax
        mov     dword [RECOVER], .a4
        mov     ax, 0x38                ; data segment, limit 0xFFF
        mov     es, ax
        mov     eax, [es:0xFFE]         ; crosses the limit
.a4:    mov     ax, 0x10
        mov     es, ax
        mov     dword [RECOVER], .a5
        mov     ax, 0x2B                ; TSS descriptor as data: #GP(0x28)
        mov     fs, ax
.a5:    mov     ax, 0x10
        mov     fs, ax

        ; -- 2-level paging: identity map 0-4 MiB (user, writable) except:
        ;    0x300000 supervisor, 0x301000 read-only, 0x400000 -> not present (PDE 1 absent)
        mov     edi, PD
        xor     eax, eax
        mov     ecx, 1024
        rep stosd
        mov     dword [PD], PT0 | 7
        mov     edi, PT0
        mov     eax, 7
        mov     ecx, 1024
.fill:  stosd
        add     eax, 0x1000
        loop    .fill
        mov     dword [PT0 + 0x300*4], 0x300000 | 3     ; supervisor, writable
        mov     dword [PT0 + 0x301*4], 0x301000 | 5     ; user, read-only
        mov     dword [PT0 + 0x302*4], 0x301000 | 7     ; alias of 0x301000, writable
        mov     eax, PD
        mov     cr3, eax
        mov     eax, cr0
        or      eax, 0x80000000
        mov     cr0, eax
        SAY     {"PG ON", 10}
        mov eax, [PT0 + 0x303*4]
        SHOW    "pte0 before "
        mov     eax, [0x303000]
        mov eax, [PT0 + 0x303*4]
        SHOW    "pte after rd "
        mov     dword [0x303010], 1
        mov eax, [PT0 + 0x303*4]
        SHOW    "pte after wr "
        mov eax, [PD]
        SHOW    "pde "
        mov     dword [RECOVER], .p1
        mov     eax, [0x400123]                         ; not present
.p1:    mov     dword [RECOVER], .p2
        mov     dword [0x301004], 0x1234                ; WP=0: supervisor may write
        mov eax, [0x302004]
        SHOW    "ro write wp0 "
        mov     eax, cr0
        or      eax, 0x10000
        mov     cr0, eax
        mov     dword [0x301008], 0x5678                ; WP=1: #PF(3)
.p2:    ; remap 0x303000 to 0x304000 and INVLPG
        mov     dword [0x304000], 0xCAFE
        mov     dword [PT0 + 0x303*4], 0x304000 | 7
        invlpg  [0x303000]
        mov eax, [0x303000]
        SHOW    "after invlpg "
        mov     dword [PT0 + 0x303*4], 0x303000 | 7
        mov     eax, cr3
        mov     cr3, eax

        ; -- ring 3 through the TSS: ESP0/SS0, an I/O bitmap allowing only port 0xE9
        mov     edi, TSS
        xor     eax, eax
        mov     ecx, 26
        rep stosd
        mov     dword [TSS + 4], KSTACK
        mov     dword [TSS + 8], 0x10
        mov     word [TSS + 0x66], 0x68
        mov     edi, TSS + 0x68
        mov     al, 0xFF
        mov     ecx, 0x2001
        rep stosb
        and     byte [TSS + 0x68 + (0xE9 >> 3)], ~(1 << (0xE9 & 7))
        mov     ax, 0x28
        ltr     ax
        mov eax, [GDT + 0x28 + 4]
        SHOW    "tss desc hi "
        mov     dword [RECOVER], .r1
        push    dword 0x23
        push    dword USTACK
        push    dword 0x002
        push    dword 0x1B
        push    dword user1
        iretd
.r1:    mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     dword [RECOVER], .r2
        push    dword 0x23
        push    dword USTACK
        push    dword 0x002
        push    dword 0x1B
        push    dword user2
        iretd
.r2:    mov     dword [RECOVER], .r3
        push    dword 0x23
        push    dword USTACK
        push    dword 0x002
        push    dword 0x1B
        push    dword user3
        iretd
.r3:    mov     ax, 0x10
        mov     ds, ax
        mov     es, ax

        ; -- PAE: map 0-2 MiB with a 2 MiB page, 2-4 MiB with 4 KiB pages; 0x200000 -> 0x100000
        mov     eax, cr0
        and     eax, 0x7FFFFFFF
        mov     cr0, eax
        mov     edi, PDPT
        xor     eax, eax
        mov     ecx, (0xD000 - PDPT) / 4
        rep stosd
        mov     dword [PDPT], PAEPD | 1
        mov     dword [PAEPD], 0x000000E7               ; 2 MiB page, P RW US A D PS
        mov     dword [PAEPD + 8], PAEPT | 7
        mov     edi, PAEPT
        mov     eax, 0x200007
        mov     ecx, 512
.fill2: mov     [edi], eax
        add     edi, 8
        add     eax, 0x1000
        loop    .fill2
        mov     dword [PAEPT], 0x100007                 ; 0x200000 -> 0x100000
        mov     dword [0x100000], 0xFEEDF00D
        mov     eax, cr4
        or      eax, 0x20
        mov     cr4, eax
        mov     eax, PDPT
        mov     cr3, eax
        mov     eax, cr0
        or      eax, 0x80000000
        mov     cr0, eax
        mov eax, [0x200000]
        SHOW    "pae read "
        mov eax, [PAEPT]
        SHOW    "pae pte "
        mov eax, [PAEPD]
        SHOW    "pae pde "
        mov     dword [RECOVER], .x1
        mov     dword [PAEPT + 8*5], 0x205005           ; user, read-only
        mov     dword [0x205000], 1                      ; WP=1: #PF(3)
.x1:
        SAY     {"DONE", 10}
        mov     al, 0
        out     0xF4, al
        cli
        hlt

; ---------------------------------------------------------------- ring 3 code
user1:  mov     al, 'U'
        out     0xE9, al                ; allowed by the I/O bitmap
        mov     al, 10
        out     0xE9, al
        mov     ax, 0x23
        mov     ds, ax
        int     0x80
        push    dword 0xABCD
        call    0x43:0                  ; call gate to ring 0 with one parameter
        mov     eax, cs
        and     al, 3
        add     al, '0'
        out     0xE9, al
        mov     al, 10
        out     0xE9, al
        mov     eax, [0x300000]         ; supervisor page: #PF(5)
        jmp     $
user2:  out     0x80, al                ; not in the bitmap: #GP(0)
        jmp     $
user3:  cli                             ; CPL 3 > IOPL 0: #GP(0)
        jmp     $

; ---------------------------------------------------------------- GDT image
        align   8
gdt_rom:
        dq      0
        dq      0x00CF9B000000FFFF      ; 0x08 code, ring 0
        dq      0x00CF93000000FFFF      ; 0x10 data, ring 0
        dq      0x00CFFB000000FFFF      ; 0x18 code, ring 3
        dq      0x00CFF3000000FFFF      ; 0x20 data, ring 3
        dw      0x2068, TSS & 0xFFFF    ; 0x28 TSS32 (available)
        db      (TSS >> 16) & 0xFF, 0x89, 0x00, 0x00
        dq      0                       ; 0x30
        dw      0x0FFF, 0x0000          ; 0x38 data, base 0x40000, limit 0xFFF
        db      0x04, 0x93, 0x40, 0x00
        dw      (gate0 - $$) & 0xFFFF, 0x08     ; 0x40 call gate, DPL 3, 1 parameter
        db      1, 0xEC
        dw      0x000F                  ; ROM offsets are below 0x10000: gate0 is 0x000Fxxxx
gdt_end:

        times   0xFFF0 - ($ - $$) db 0xF4
        bits    16
reset:  jmp     0xF000:(start16 - 0xF0000)
        times   0x10000 - ($ - $$) db 0xF4

; System instructions and descriptor rules, compared with QEMU like pmode.asm: SGDT/SIDT/SMSW,
; SLDT/STR, LLDT and an LDT segment, hardware task switches (CALL/IRET/JMP, #DF task gate),
; virtual-8086 mode (IRETD in, INT out, IRETD back), LAR/LSL/VERR/VERW, ARPL, conforming code,
; BOUND and INTO, IRET back to ring 3 and a RETF to an outer ring, CPUID-free.
        cpu     686
        org     0xF0000

GDT     equ 0x1000
IDT     equ 0x2000
TSS     equ 0x3000
LDT     equ 0x4000
TSS2    equ 0x3100
TSS3    equ 0x3200
RECOVER equ 0x500
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
        mov     word [0x600], gdt_end - gdt_rom - 1
        mov     dword [0x602], GDT
        o32 lgdt [0x600]
        ; real-mode checks first: SMSW, a real-mode INT through the IVT
        smsw    ax
        mov     [0x700], ax
        mov     word [0x80*4], int80_rm - 0xF0000
        mov     word [0x80*4+2], 0xF000
        mov     ax, 0x1234
        int     0x80
        mov     [0x702], ax
        mov     eax, cr0
        or      eax, 1
        mov     cr0, eax
        jmp     dword 0x08:pm32
int80_rm:
        add     ax, 0x1111
        iret

        bits    32
%include "common.inc"
%macro SHOW 1
        SAY     %1
        call    phex
        push    eax
        mov     al, 10
        call    putc
        pop     eax
%endmacro
; flags ZF as 0/1 in eax
%macro ZF 0
        pushfd
        pop     eax
        shr     eax, 6
        and     eax, 1
%endmacro

%assign v 0
%rep 20
        STUB    v
%assign v v+1
%endrep
exc_common:
        mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        SAY     "EXC "
        mov     eax, [esp]
        call    phex
        SAY     " err="
        mov     eax, [esp + 4]
        call    phex
        SAY     " cpl="
        mov     eax, [esp + 12]
        and     eax, 3
        call    phex
        mov     al, 10
        call    putc
        mov     esp, KSTACK
        jmp     [RECOVER]


v86int: mov     ax, ds
        movzx   eax, ax
        mov     [ss:0x640], eax         ; DS as the handler finds it: null, unusable until reloaded
        mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     [0x644], ebx
        mov     [0x648], ecx
        mov     [0x64C], edx
        mov     eax, [0x640]
        SHOW    "v86 int ds "
        mov     eax, [esp]
        SHOW    "v86 eip "
        mov     eax, [esp + 4]
        SHOW    "v86 cs "
        mov     eax, [esp + 8]
        SHOW    "v86 eflags "
        mov     eax, [esp + 12]
        SHOW    "v86 esp "
        mov     eax, [esp + 16]
        SHOW    "v86 ss "
        mov     eax, [esp + 20]
        SHOW    "v86 es "
        mov     eax, [esp + 24]
        SHOW    "v86 ds "
        mov     eax, [esp + 32]
        SHOW    "v86 gs "
        mov     eax, [0x644]
        SHOW    "v86 bx "
        mov     eax, [0x648]
        SHOW    "v86 cx "
        mov     eax, [0x64C]
        SHOW    "v86 dx "
        iretd

task2:  pushfd
        pop     eax
        and     eax, 0x4000
        SHOW    "TASK2 nt "
        movzx   eax, word [TSS2]
        SHOW    "link "
        str     eax
        and     eax, 0xFFFF
        SHOW    "tr "
        mov     eax, ebx
        SHOW    "ebx "
        iretd
        SAY     {"TASK2 again", 10}
        jmp     0x28:0

; conforming code segment (selector 0x30, DPL 0) called from ring 3: runs at CPL 3
conf:   mov     eax, cs
        SHOW    "CONF cs="
        retf

pm32:   mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     esp, KSTACK
        mov     edi, IDT
        xor     eax, eax
        mov     ecx, 512
        rep stosd
%assign v 0
%rep 20
        SETGATE v, stub_ %+ v, 0x8E
%assign v v+1
%endrep
        mov     word [0x608], 0x7FF
        mov     dword [0x60A], IDT
        lidt    [0x608]
        movzx   eax, word [0x700]
        SHOW    "rm smsw "
        movzx   eax, word [0x702]
        SHOW    "rm int  "
        ; SGDT/SIDT/SMSW
        sgdt    [0x610]
        movzx   eax, word [0x610]
        SHOW    "gdt lim "
        mov     eax, [0x612]
        SHOW    "gdt base "
        sidt    [0x618]
        movzx   eax, word [0x618]
        SHOW    "idt lim "
        smsw    eax
        and     eax, 0xFFFF
        SHOW    "smsw "
        ; LDT with one data segment (LDT selector 0x0C -> index 1, TI=1, RPL 0)
        mov     dword [LDT + 8], 0x0000FFFF
        mov     dword [LDT + 12], 0x00CF9300
        mov     ax, 0x38
        lldt    ax
        sldt    eax
        and     eax, 0xFFFF
        SHOW    "sldt "
        mov     ax, 0x0C
        mov     fs, ax
        mov     dword [fs:0x5000], 0x600D
        mov     eax, [0x5000]
        SHOW    "ldt seg write "
        ; TSS + STR
        mov     edi, TSS
        xor     eax, eax
        mov     ecx, 26
        rep stosd
        mov     dword [TSS + 4], KSTACK
        mov     dword [TSS + 8], 0x10
        mov     word [TSS + 0x66], 0x68
        mov     word [TSS + 0x60], 0x38         ; LDTR is loaded (not saved) on a switch back
        mov     ax, 0x28
        ltr     ax
        str     eax
        and     eax, 0xFFFF
        SHOW    "str "
        ; LAR / LSL / VERR / VERW
        mov     ecx, 0x10
        lar     eax, ecx
        SHOW    "lar 10 "
        lsl     eax, ecx
        SHOW    "lsl 10 "
        mov     ecx, 0x28
        lar     eax, ecx
        SHOW    "lar 28 "
        lsl     eax, ecx
        SHOW    "lsl 28 "
        mov     ecx, 0x40
        mov     eax, 0x5555
        lar     eax, ecx                ; beyond the GDT: ZF=0, EAX unchanged
        SHOW    "lar bad "
        ZF
        SHOW    "lar bad zf "
        mov     cx, 0x08
        verr    cx
        ZF
        SHOW    "verr code "
        verw    cx
        ZF
        SHOW    "verw code "
        mov     cx, 0x10
        verw    cx
        ZF
        SHOW    "verw data "
        ; ARPL
        mov     ax, 0x0010
        mov     cx, 0x0003
        arpl    ax, cx
        push    eax
        ZF
        SHOW    "arpl zf "
        pop     eax
        and     eax, 0xFFFF
        SHOW    "arpl "
        ; hardware task switches: CALL to a TSS, IRET back through NT, JMP there and back
        mov     edi, TSS2
        xor     eax, eax
        mov     ecx, 26
        rep stosd
        mov     dword [TSS2 + 0x20], task2
        mov     dword [TSS2 + 0x24], 0x2
        mov     dword [TSS2 + 0x38], 0x28000
        mov     word [TSS2 + 0x48], 0x10
        mov     word [TSS2 + 0x4C], 0x08
        mov     word [TSS2 + 0x50], 0x10
        mov     word [TSS2 + 0x54], 0x10
        mov     word [TSS2 + 0x58], 0x10
        mov     word [TSS2 + 0x5C], 0x10
        mov     ebx, 0xB0B
        call    0x40:0
        str     eax
        and     eax, 0xFFFF
        SHOW    "back tr "
        mov     ecx, 0x40
        lar     eax, ecx
        SHOW    "tss2 after iret "
        pushfd
        pop     eax
        and     eax, 0x4000
        SHOW    "task1 nt "
        jmp     0x40:0
        SAY     {"back again", 10}
        mov     eax, cr0
        and     eax, 8
        SHOW    "cr0.ts "
        clts
        mov     eax, [TSS2 + 0x20]
        sub     eax, task2
        SHOW    "task2 saved eip-task2 "
        ; BOUND and INTO
        mov     dword [0x620], 10
        mov     dword [0x624], 20
        mov     dword [RECOVER], .b1
        mov     eax, 15
        bound   eax, [0x620]
        SAY     {"bound ok", 10}
        mov     eax, 25
        bound   eax, [0x620]            ; #BR
.b1:    mov     dword [RECOVER], .b2
        SETGATE 4, stub_4, 0x8E
        mov     eax, 0x7FFFFFFF
        add     eax, 1
        db      0xCE                    ; INTO: #OF is a trap, continues after
.b2:
        ; ring 3 calling a conforming segment, then RETF from ring 0 to ring 3 via a far return
        mov     dword [RECOVER], .c1
        push    dword 0x23
        push    dword USTACK
        push    dword 0x3202            ; IOPL 3: ring 3 may use the debug port
        push    dword 0x1B
        push    dword user
        iretd
.c1:    mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        ; RETF to an outer ring: build the frame by hand (IOPL 3 kept in EFLAGS)
        pushfd
        or      dword [esp], 0x3000
        popfd
        mov     dword [RECOVER], .c2
        push    dword 0x23
        push    dword USTACK
        push    dword 0x1B
        push    dword user2
        retf
.c2:    mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        ; virtual-8086 mode: IRETD with VM=1 from ring 0, INT 0x30 back to ring 0 through a DPL-3
        ; gate (segment registers on the ring-0 stack), IRETD back into v86, then HLT -> #GP
        SETGATE 0x30, v86int, 0xEE
        mov     dword [RECOVER], .v1
        push    dword 0x2100            ; GS
        push    dword 0x2200            ; FS
        push    dword 0x2300            ; DS
        push    dword 0x2400            ; ES
        push    dword 0x2000            ; SS
        push    dword 0x0FF0            ; ESP
        push    dword 0x23202           ; EFLAGS: VM, IOPL 3, IF
        push    dword 0xF000            ; CS
        push    dword v86code - 0xF0000 ; EIP
        iretd
.v1:    mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        ; a double fault through a task gate (as Linux/i386 handles #DF): INT 0x77 hits an
        ; invalid gate (#GP), whose own gate is not present (#NP) -> #DF -> task 0x48
        mov     edi, TSS3
        xor     eax, eax
        mov     ecx, 26
        rep stosd
        mov     dword [TSS3 + 0x20], df_task
        mov     dword [TSS3 + 0x24], 0x2
        mov     dword [TSS3 + 0x38], 0x2C000
        mov     word [TSS3 + 0x48], 0x10
        mov     word [TSS3 + 0x4C], 0x08
        mov     word [TSS3 + 0x50], 0x10
        mov     word [TSS3 + 0x54], 0x10
        mov     dword [IDT + 8*8], 0x00480000           ; task gate -> TSS 0x48
        mov     dword [IDT + 8*8 + 4], 0x00008500
        and     byte [IDT + 13*8 + 5], 0x7F             ; #GP gate not present
        int     0x77
        SAY     {"not reached", 10}
        hlt

df_task:
        pop     eax                     ; the #DF error code, on the new task's stack
        SHOW    "DF err "
        movzx   eax, word [TSS3]
        SHOW    "DF link "
        pushfd
        pop     eax
        and     eax, 0x4000
        SHOW    "DF nt "
        SAY     {"DONE", 10}
        mov     al, 0
        out     0xF4, al
        cli
        hlt

user:   mov     ax, 0x23
        mov     ds, ax
        call    0x33:conf               ; conforming code: CPL stays 3
        pushfd
        pop     eax
        and     eax, 0x3200             ; IF and IOPL as ring 3 sees them
        SHOW    "user flags "
        hlt                             ; privileged at CPL 3 whatever IOPL: #GP(0)
        jmp     $
user2:  mov     eax, cs
        mov     ax, 0x23
        mov     ds, ax
        mov     eax, cs
        SHOW    "retf to cs "
        mov     eax, ds
        SHOW    "ds "
        int3                            ; vector 3 gate has DPL 0: #GP(3*8+2)
        jmp     $

        bits    16
v86code:
        mov     bx, ds
        push    word 0x5678
        pop     cx
        pushf
        pop     dx
        int     0x30
        hlt                             ; privileged: #GP from virtual-8086 mode
        bits    32

        align   8
gdt_rom:
        dq      0
        dq      0x00CF9B000000FFFF      ; 0x08 code ring 0
        dq      0x00CF93000000FFFF      ; 0x10 data ring 0
        dq      0x00CFFB000000FFFF      ; 0x18 code ring 3
        dq      0x00CFF3000000FFFF      ; 0x20 data ring 3
        dw      0x0067, TSS & 0xFFFF    ; 0x28 TSS32
        db      (TSS >> 16) & 0xFF, 0x89, 0x00, 0x00
        dq      0x00CF9F000000FFFF      ; 0x30 conforming code, DPL 0, readable
        dw      0x000F, LDT & 0xFFFF    ; 0x38 LDT, limit 15
        db      (LDT >> 16) & 0xFF, 0x82, 0x00, 0x00
        dw      0x0067, TSS2 & 0xFFFF   ; 0x40 second TSS32 (available)
        db      (TSS2 >> 16) & 0xFF, 0x89, 0x00, 0x00
        dw      0x0067, TSS3 & 0xFFFF   ; 0x48 double-fault TSS32
        db      (TSS3 >> 16) & 0xFF, 0x89, 0x00, 0x00
gdt_end:

        times   0xFFF0 - ($ - $$) db 0xF4
        bits    16
reset:  jmp     0xF000:(start16 - 0xF0000)
        times   0x10000 - ($ - $$) db 0xF4

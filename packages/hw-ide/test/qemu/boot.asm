; A boot sector that runs a port-I/O script against the machine's real devices and writes what it
; reads to the debug console (port 0xE9), then exits QEMU through isa-debug-exit (port 0xF4).
; The script (built by script.ts) is loaded from LBA 1 with INT 13h AH=42h to 0000:8000.
;
; Script ops (little-endian operands):
;   00                      end
;   01 port:u16 v:u8        outb          02 port v:u16   outw          03 port v:u32   outl
;   11 port                 inb -> 1 byte 12 port         inw -> 2      13 port         inl -> 4
;   14 port n:u16           n x inw -> 2n bytes           16 port n:u16   n x inl -> 4n bytes
;   15 port n:u16 w[n]      n x outw
;   20 port mask:u8 val:u8  poll inb(port) until (v & mask) == val -> final v (1 byte)
;   30                      PIC slave IRR & 0xC0 (IRQ14 = 0x40, IRQ15 = 0x80, both level-triggered)
;   40 addr:u32 n:u16 b[n]  write memory  41 addr:u32 n:u16   read memory -> n bytes
bits 16
org 0x7c00

SCRIPT_SEG equ 0x0800
SCRIPT_SECTORS equ 60

start:
    cli
    jmp 0:.flat
.flat:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    mov si, dap
    mov ah, 0x42
    int 0x13
    jc fail
    cli
    ; IRQ14 and IRQ15 level-triggered (ELCR2 bits 6, 7) so IRR follows the lines; all IRQs masked.
    mov dx, 0x4d1
    in al, dx
    or al, 0xc0
    out dx, al
    mov al, 0xff
    out 0xa1, al
    out 0x21, al
    mov ax, SCRIPT_SEG
    mov ds, ax
    xor si, si

next:
    lodsb
    cmp al, 0x00
    je done
    cmp al, 0x01
    je op_outb
    cmp al, 0x02
    je op_outw
    cmp al, 0x03
    je op_outl
    cmp al, 0x11
    je op_inb
    cmp al, 0x12
    je op_inw
    cmp al, 0x13
    je op_inl
    cmp al, 0x14
    je op_inw_n
    cmp al, 0x15
    je op_outw_n
    cmp al, 0x16
    je op_inl_n
    cmp al, 0x20
    je op_poll
    cmp al, 0x30
    je op_irr
    cmp al, 0x40
    je op_memw
    cmp al, 0x41
    je op_memr
    jmp fail

op_outb:
    lodsw
    mov dx, ax
    lodsb
    out dx, al
    jmp next
op_outw:
    lodsw
    mov dx, ax
    lodsw
    out dx, ax
    jmp next
op_outl:
    lodsw
    mov dx, ax
    lodsd
    out dx, eax
    jmp next
op_inb:
    lodsw
    mov dx, ax
    in al, dx
    out 0xe9, al
    jmp next
op_inw:
    lodsw
    mov dx, ax
    in ax, dx
    call emit16
    jmp next
op_inl:
    lodsw
    mov dx, ax
    in eax, dx
    call emit32
    jmp next
op_inw_n:
    lodsw
    mov dx, ax
    lodsw
    mov cx, ax
.l: in ax, dx
    call emit16
    loop .l
    jmp next
op_inl_n:
    lodsw
    mov dx, ax
    lodsw
    mov cx, ax
.l: in eax, dx
    call emit32
    loop .l
    jmp next
op_outw_n:
    lodsw
    mov dx, ax
    lodsw
    mov cx, ax
.l: lodsw
    out dx, ax
    loop .l
    jmp next
op_poll:
    lodsw
    mov dx, ax
    lodsb
    mov bl, al
    lodsb
    mov bh, al
    mov ecx, 0x4000000
.l: in al, dx
    mov ah, al
    and al, bl
    cmp al, bh
    je .found
    dec ecx
    jnz .l
.found:
    mov al, ah
    out 0xe9, al
    jmp next
op_irr:
    mov al, 0x0a
    out 0xa0, al
    in al, 0xa0
    and al, 0xc0
    out 0xe9, al
    jmp next
op_memw:
    lodsd
    call seg_of
    lodsw
    mov cx, ax
    rep movsb
    jmp next
op_memr:
    lodsd
    call seg_of
    lodsw
    mov cx, ax
.l: mov al, [es:di]
    out 0xe9, al
    inc di
    loop .l
    jmp next

; eax = linear address -> es:di
seg_of:
    mov edi, eax
    and di, 0x000f
    shr eax, 4
    mov es, ax
    ret
emit16:
    out 0xe9, al
    mov al, ah
    out 0xe9, al
    ret
emit32:
    push cx
    mov cx, 4
.l: out 0xe9, al
    shr eax, 8
    loop .l
    pop cx
    ret

done:
    mov al, 0x00
    out 0xf4, al          ; isa-debug-exit: QEMU exits with status 1
    jmp halt
fail:
    mov al, '!'
    out 0xe9, al
    mov al, 0x01
    out 0xf4, al          ; exits with status 3
halt:
    hlt
    jmp halt

align 4
dap:
    db 0x10, 0
    dw SCRIPT_SECTORS
    dw 0x0000, SCRIPT_SEG
    dq 1

times 510 - ($ - $$) db 0
    dw 0xaa55

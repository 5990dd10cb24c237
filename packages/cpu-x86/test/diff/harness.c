/*
 * Differential-test harness: runs instruction snippets natively on the host CPU in a 32-bit
 * process (gcc -m32). Each input record is 192 bytes of code (built by test/differential.test.ts)
 * followed by the 36-byte input state (eax..edi, eflags) and 16 bytes of memory operand; the
 * snippet stores the output state at DATA+64. Each output record is the 36-byte output state and
 * the 16 bytes of memory.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define CODE 0x00800000u
#define DATA 0x00900000u
#define CODE_SIZE 192
#define REC_IN (CODE_SIZE + 36 + 16)

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: harness in.bin out.bin\n");
    return 2;
  }
  uint8_t *code = mmap((void *)CODE, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  uint8_t *data = mmap((void *)DATA, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (code != (uint8_t *)CODE || data != (uint8_t *)DATA) {
    perror("mmap");
    return 1;
  }
  FILE *in = fopen(argv[1], "rb");
  FILE *out = fopen(argv[2], "wb");
  if (!in || !out) {
    perror("fopen");
    return 1;
  }
  uint8_t rec[REC_IN];
  while (fread(rec, 1, REC_IN, in) == REC_IN) {
    memcpy(code, rec, CODE_SIZE);
    memset(data, 0, 0x2000);
    memcpy(data, rec + CODE_SIZE, 36);
    memcpy(data + 0x200, rec + CODE_SIZE + 36, 16);
    __builtin___clear_cache((char *)code, (char *)code + CODE_SIZE);
    ((void (*)(void))code)();
    fwrite(data + 64, 1, 36, out);
    fwrite(data + 0x200, 1, 16, out);
  }
  fclose(out);
  return 0;
}

// SPDX-License-Identifier: BSD-3-Clause
/*
 * Instructions capstone 4 cannot decode: hint() runs a reserved NOP
 * (0F 1E C0: a NOP on every x86-64 CPU), then main faults on an EVEX
 * vpcmpub through a null pointer (SIGSEGV with AVX-512, SIGILL without):
 * the bytes are in the binary, only the disassembler lacks them.
 */
#include <stddef.h>

void __attribute__((noinline)) hint(void)
{
	__asm__ volatile(".byte 0x0f, 0x1e, 0xc0");
}

int main(void)
{
	hint();
	__asm__ volatile("xor %%edi, %%edi\n\t"
			 ".byte 0x62, 0xf3, 0x7d, 0x20, 0x3f, 0x07, 0x00"
			 ::: "rdi", "memory");
	return 0;
}

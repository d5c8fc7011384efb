/**
 * Building blocks of synthetic CPython address spaces for the walker's unit tests
 * (walker.test.ts, torn.test.ts).
 */
import type { Layout } from '../../src/capture/sampler/layouts/types.ts';
import type { Address, ImageMemory } from '../../src/capture/sampler/memory.ts';

/** Add a zeroed struct of `size` bytes at `addr`, filled in by `fill`. */
export function putStruct(mem: ImageMemory, addr: Address, size: number, fill: (d: DataView) => void): void {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  mem.add(addr, b);
}

/**
 * Type objects named "code", "str" and "bytes" at `base` (the walker checks that a code
 * object, its names and its line table have those types); their addresses.
 */
export function addTypeObjects(mem: ImageMemory, layout: Layout, base: Address): Record<'code' | 'str' | 'bytes', Address> {
  const typeOf: Record<'code' | 'str' | 'bytes', Address> = { code: base, str: base + 0x400, bytes: base + 0x800 };
  for (const [i, [tpName, addr]] of Object.entries(typeOf).entries()) {
    const nameAt = base + 0xc00 + i * 16;
    putStruct(mem, addr, layout.type.size, (d) => d.setBigUint64(layout.type.tp_name, BigInt(nameAt), true));
    mem.add(nameAt, new TextEncoder().encode(`${tpName}\0`));
  }
  return typeOf;
}

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

/** A compact ASCII str object `text` at `at`, of type `strType`. */
export function putAsciiStr(mem: ImageMemory, layout: Layout, at: Address, text: string, strType: Address): void {
  const U = layout.unicode;
  putStruct(mem, at, U.ascii_size + text.length + 1, (d) => {
    d.setBigUint64(layout.object.ob_type, BigInt(strType), true);
    d.setBigInt64(U.length, BigInt(text.length), true);
    d.setUint32(U.state, (1 << 2) | (1 << 5) | (1 << 6), true); // kind 1, compact, ascii
    for (let i = 0; i < text.length; i++) d.setUint8(U.ascii_size + i, text.charCodeAt(i));
  });
}

/**
 * A code object at `at` (no bytecode) of type `codeType`, whose name (also its qualname,
 * 3.11+), file and line table are the objects at `name`, `file` and `table`.
 */
export function putCode(mem: ImageMemory, layout: Layout, at: Address, o: { codeType: Address; name: Address; file: Address; table: Address; firstLine: number; flags?: number; firstTraceable?: number }): void {
  const C = layout.code;
  putStruct(mem, at, C.size, (d) => {
    d.setBigUint64(layout.object.ob_type, BigInt(o.codeType), true);
    d.setInt32(C.firstlineno, o.firstLine, true);
    if (C.flags != null) d.setInt32(C.flags, o.flags ?? 0, true);
    d.setBigUint64(C.name, BigInt(o.name), true);
    if (C.qualname !== null) d.setBigUint64(C.qualname, BigInt(o.name), true);
    d.setBigUint64(C.filename, BigInt(o.file), true);
    d.setBigUint64(C.linetable, BigInt(o.table), true);
    if (C.firsttraceable !== null) d.setInt32(C.firsttraceable, o.firstTraceable ?? 0, true);
  });
}

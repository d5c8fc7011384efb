import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MapsParseError, findExecutable, findLibpython, mappingAt, parseMaps, readMaps } from '../../src/capture/sampler/maps.ts';
import { ProcessGoneError } from '../../src/capture/sampler/memory.ts';
import { spawnSync } from 'node:child_process';

const SHARED = `\
55d0c4a00000-55d0c4a01000 r--p 00000000 08:01 1234                       /opt/py/bin/python3.12
55d0c4a01000-55d0c4a02000 r-xp 00001000 08:01 1234                       /opt/py/bin/python3.12
55d0c5b00000-55d0c5c00000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a0b0000 r--p 00000000 08:01 5678                       /opt/py/lib/libpython3.12.so.1.0
7f1c2a0b0000-7f1c2a300000 r-xp 000b0000 08:01 5678                       /opt/py/lib/libpython3.12.so.1.0
7f1c2a500000-7f1c2a560000 rw-p 00500000 08:01 5678                       /opt/py/lib/libpython3.12.so.1.0
7f1c2a560000-7f1c2a580000 rw-p 00000000 00:00 0 
7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]
`;

test('parseMaps gives typed records (anonymous mappings have an empty path)', () => {
  const maps = parseMaps(SHARED);
  assert.equal(maps.length, 8);
  assert.deepEqual(maps[4], {
    start: 0x7f1c2a0b0000,
    end: 0x7f1c2a300000,
    perms: 'r-xp',
    offset: 0xb0000,
    dev: '08:01',
    inode: 5678,
    path: '/opt/py/lib/libpython3.12.so.1.0',
  });
  assert.equal(maps[6]!.path, '');
  assert.equal(maps[2]!.path, '[heap]');
  assert.equal(mappingAt(maps, 0x7f1c2a0b1234), maps[4]);
  assert.equal(mappingAt(maps, 0x10), undefined);
});

test('findLibpython: name version, bias = start of the offset-0 mapping', () => {
  const lib = findLibpython(parseMaps(SHARED))!;
  assert.equal(lib.kind, 'library');
  assert.equal(lib.path, '/opt/py/lib/libpython3.12.so.1.0');
  assert.equal(lib.bias, 0x7f1c2a000000);
  assert.equal(lib.mappings.length, 3);
  assert.deepEqual(lib.nameVersion, { major: 3, minor: 12 });
});

test('findLibpython recognises debug, 3.6/3.7 "m" and deleted libraries; ignores libpython3.so', () => {
  for (const [path, minor] of [
    ['/usr/lib/libpython3.13d.so.1.0', 13],
    ['/x/libpython3.7m.so.1.0', 7],
    ['/x/libpython3.10.so (deleted)', 10],
  ] as const) {
    const lib = findLibpython(parseMaps(`7f0000000000-7f0000001000 r--p 00000000 08:01 1 ${path}\n`))!;
    assert.equal(lib.path, path);
    assert.equal(lib.nameVersion!.minor, minor);
  }
  assert.equal(findLibpython(parseMaps('7f0000000000-7f0000001000 r--p 00000000 08:01 1 /x/libpython3.so\n')), undefined);
});

test('findExecutable: static build without libpython', () => {
  const maps = parseMaps(`\
00400000-00420000 r--p 00000000 08:01 99 /usr/bin/python3.11
00420000-00800000 r-xp 00020000 08:01 99 /usr/bin/python3.11
7f0000000000-7f0000001000 r--p 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
`);
  assert.equal(findLibpython(maps), undefined);
  const exe = findExecutable(maps, '/usr/bin/python3.11')!;
  assert.equal(exe.kind, 'executable');
  assert.equal(exe.bias, 0x400000);
  assert.deepEqual(exe.nameVersion, { major: 3, minor: 11 });
  assert.equal(findExecutable(maps)!.path, '/usr/bin/python3.11');
});

test('a malformed maps line is a MapsParseError with its line number', () => {
  assert.throws(() => parseMaps('00400000-00420000 r--p 00000000 08:01 99 /a\nnonsense\n'), (e: unknown) => e instanceof MapsParseError && /line 2/.test(e.message));
});

test('readMaps of this process finds node; of a dead PID is a ProcessGoneError', () => {
  const maps = readMaps(process.pid);
  assert.ok(maps.some((m) => m.perms.includes('x')));
  const pid = spawnSync('true').pid!;
  assert.throws(() => readMaps(pid), (e: unknown) => e instanceof ProcessGoneError && e.pid === pid);
});

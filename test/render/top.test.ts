import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTopTable, topExporter } from '../../src/render/top.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { smallProfile } from './profiles.ts';

test('top table by function: exact rows, sorted by own then total then label', () => {
  assert.equal(
    renderTopTable(smallProfile()),
    [
      'Total: 14 samples · 9 functions',
      '  %Own  %Total  Own  Total  Function (file)',
      '28.57%  28.57%    4      4  dot (libopenblas.so)',
      '21.43%  21.43%    3      3  <idle>',
      '14.29%  42.86%    2      6  compute (app.py)',
      '14.29%  14.29%    2      2  child_main (child.py)',
      '14.29%  14.29%    2      2  sys_read_[k]',
      ' 7.14%   7.14%    1      1  parse (worker.py)',
      ' 0.00%  57.14%    0      8  main (app.py)',
      ' 0.00%  28.57%    0      4  worker_loop (worker.py)',
      ' 0.00%  14.29%    0      2  load (io.py)',
      '',
    ].join('\n'),
  );
});

test('top table by line with a limit', () => {
  assert.equal(
    renderTopTable(smallProfile(), { by: 'line', limit: 3, fullFilenames: true }),
    [
      'Total: 14 samples · 9 lines, showing the top 3',
      '  %Own  %Total  Own  Total  Function (file:line)',
      '28.57%  28.57%    4      4  dot (libopenblas.so)',
      '21.43%  21.43%    3      3  <idle>',
      '14.29%  42.86%    2      6  compute (/srv/app.py:10)',
      '… 6 more lines',
      '',
    ].join('\n'),
  );
});

test('top table in the value unit: nanoseconds and bytes', () => {
  const b = new ProfileBuilder({
    valueTypes: [
      { name: 'cpu', unit: 'nanoseconds' },
      { name: 'alloc', unit: 'bytes' },
    ],
  });
  const f = b.frame({ name: 'f', file: 'a.py', line: 1 });
  const g = b.frame({ name: 'g', file: 'a.py', line: 5 });
  b.sample(b.stackOf([f]), [2_500_000, 1536], 0, 'on-cpu', 0);
  b.sample(b.stackOf([f, g]), [1_250_000_000, 3 * 1024 * 1024], 0, 'on-cpu', 1);
  const p = b.build();
  assert.equal(
    renderTopTable(p),
    [
      'Total: 1.25 s (cpu, nanoseconds) · 2 functions',
      '  %Own   %Total     Own  Total  Function (file)',
      '99.80%   99.80%   1.25s  1.25s  g (a.py)',
      ' 0.20%  100.00%  2.50ms  1.25s  f (a.py)',
      '',
    ].join('\n'),
  );
  assert.match(renderTopTable(p, { valueIndex: 1 }), /^Total: 3\.00 MiB \(alloc, bytes\)/);
  assert.match(renderTopTable(p, { valueIndex: 1 }), /3\.00MiB {2}3\.00MiB {2}g \(a\.py\)/);
  assert.throws(() => renderTopTable(p, { valueIndex: 5 }), /value index 5 out of range/);
});

test('top exporter wraps renderTopTable', () => {
  assert.equal(topExporter.id, 'top');
  assert.equal(topExporter.extension, '.top.txt');
  assert.equal(topExporter.write(smallProfile()), renderTopTable(smallProfile()));
});

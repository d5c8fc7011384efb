/**
 * The dispatcher picks the right importer for every real fixture, with and without the
 * file name, and explains when nothing fits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importProfile } from '../../src/formats/index.ts';
import { InputFile, UnknownFormatError } from '../../src/formats/types.ts';
import { foldedStacks } from '../../src/model/query.ts';
import { fixture } from '../helpers/format-checks.ts';

const EXPECTED: Array<[string, string]> = [
  ['perf/3.12/perf-script.txt', 'perf-script'],
  ['perf/3.12/perf-script-fields-pid-tid-cpu-header.txt', 'perf-script'],
  ['perf/3.12/perf-script-fp-no-py-frames.txt', 'perf-script'],
  ['perf/3.13/perf-script-jit.txt', 'perf-script'],
  ['folded/perf-stackcollapse/3.12-kernel-tid.folded', 'folded'],
  ['folded/perf-stackcollapse/3.13-jit.folded', 'folded'],
  ['folded/gregg/kernel-inline-jit-suffixes.folded', 'folded'],
  ['folded/gregg/spaces-and-decimal-counts.folded', 'folded'],
  ['folded/gregg/differential.folded', 'folded'],
  ['bpftrace/ustack.txt', 'bpftrace'],
  ['bpftrace/ustack-comm.txt', 'bpftrace'],
  ['bpftrace/ustack-comm.json', 'bpftrace'],
  ['bpftrace/kstack-ustack-comm.txt', 'bpftrace'],
  ['bpftrace/ustack-perf-mode.txt', 'bpftrace'],
  ['austin/3.8/mixed.austin.txt', 'austin'],
  ['austin/3.8/callchain-alt-format.austin.txt', 'austin'],
  ['austin/3.8/callchain-full-metrics.austin.txt', 'austin'],
  ['cprofile/3.8/mixed.pstats', 'pstats'],
  ['cprofile/3.13/mixed.pstats', 'pstats'],
  ['cprofile/3.11-profile/mixed-run-string.pstats', 'pstats'],
  ['yappi/3.11/mixed.pstats', 'pstats'],
  ['pprof/go/cpu.pprof', 'pprof'],
  ['pyspy/raw/record-lineno.txt', 'pyspy-raw'],
  ['pyspy/raw/threads-hex.txt', 'pyspy-raw'],
  ['pyspy/raw/subprocesses.txt', 'pyspy-raw'],
  ['tachyon/3.15/collapsed-all-threads.txt', 'tachyon-collapsed'],
  ['tachyon/3.15/collapsed-native.txt', 'tachyon-collapsed'],
  ['speedscope/sampled.speedscope.json', 'speedscope'],
  ['speedscope/evented.speedscope.json', 'speedscope'],
  ['chrome/pyspy-array.json', 'chrome-trace'],
  ['chrome/object-x-events.json', 'chrome-trace'],
  ['chrome/truncated-array.json', 'chrome-trace'],
];

for (const [rel, id] of EXPECTED) {
  test(`detects ${rel} as ${id}, with and without its name`, () => {
    const input = fixture(rel);
    const named = importProfile(input);
    assert.equal(named.detection.importer.id, id);
    assert.ok(named.profile.samples.length > 0, 'has samples');
    const anon = importProfile(new InputFile(input.bytes));
    assert.equal(anon.detection.importer.id, id, 'without a name');
    assert.deepEqual(foldedStacks(anon.profile), foldedStacks(named.profile));
  });
}

test('a misleading extension does not hide the real format', () => {
  const input = fixture('pprof/go/cpu.pprof');
  const r = importProfile(new InputFile(input.bytes, 'looks-like.folded'));
  assert.equal(r.detection.importer.id, 'pprof');
});

test('unknown input names the file and lists the formats', () => {
  assert.throws(() => importProfile(InputFile.fromText('just some words\nand more\n', 'notes.txt')), (e: unknown) => {
    assert.ok(e instanceof UnknownFormatError);
    assert.match((e as Error).message, /^notes\.txt: not a profile format pylens knows \(tried pylens, pylens-embedded, pprof, .*folded\)/);
    return true;
  });
});

test('--from forces an importer and reports a mismatch as a parse error', () => {
  const input = fixture('speedscope/sampled.speedscope.json');
  assert.throws(() => importProfile(input, 'pstats'), /sampled\.speedscope\.json/);
  assert.throws(() => importProfile(input, 'nope'), /unknown input format 'nope'/);
});

/**
 * pylens's HTML and SVG outputs carry their profile (src/formats/embedded.ts): what they
 * show reads back exactly, by detection and under any name; damage is reported with the
 * file and position.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importProfile } from '../../src/formats/index.ts';
import { InputFile, ParseError } from '../../src/formats/types.ts';
import { encodePylens } from '../../src/formats/pylens.ts';
import { renderHtml } from '../../src/render/html.ts';
import { renderSvg } from '../../src/render/svg.ts';
import { fixture } from '../helpers/format-checks.ts';

const original = importProfile(fixture('speedscope/sampled.speedscope.json')).profile;

test('HTML and SVG flamegraphs read back as the exact profile, by content (any file name)', () => {
  for (const [text, name] of [
    [renderHtml(original, { title: 't' }), 'flame.html'],
    [renderSvg(original), 'flame.svg'],
    [renderHtml(original), 'renamed.txt'],
  ] as const) {
    const { profile, detection } = importProfile(InputFile.fromText(text, name));
    assert.equal(detection.importer.id, 'pylens-embedded', name);
    assert.deepEqual(Buffer.from(encodePylens(profile)), Buffer.from(encodePylens(original)), name);
  }
});

test('a truncated or edited page names the file and the byte, and says how to fix it', () => {
  const html = renderHtml(original);
  const at = html.indexOf('id="pylens-profile">') + 'id="pylens-profile">'.length;
  const cut = html.slice(0, at + 40);
  assert.throws(() => importProfile(InputFile.fromText(cut, 'cut.html')), (e: unknown) => e instanceof ParseError && /^cut\.html at byte \d+: the embedded profile is not closed .*export the profile again/.test((e as Error).message));
  const edited = html.slice(0, at) + '!!not base64!!' + html.slice(at + 10);
  assert.throws(() => importProfile(InputFile.fromText(edited, 'edited.html')), (e: unknown) => e instanceof ParseError && /^edited\.html at byte \d+: the embedded profile is not base64/.test((e as Error).message));
});

test('speedscope and pprof carry pylens\u2019s metadata: lens, tool, mode, rate, overhead, environment and quality come back', async () => {
  const { carriedMeta } = await import('../../src/formats/carried-meta.ts');
  const { writeSpeedscope } = await import('../../src/formats/speedscope.ts');
  const { pprofExporter } = await import('../../src/formats/pprof.ts');
  const p = structuredClone(original);
  p.meta = { ...p.meta, lens: 'sampling', backend: 'pylens-sampler', mode: 'cpu', rateHz: 100, durationNs: 5e9, overhead: { fraction: 0.012, method: 'sampler CPU time / wall time' }, environment: { kernel: 'Linux 6.1', python: { version: '3.12.1', implementation: 'CPython' } }, extra: { truncatedSamples: 3, intervals: 'uniform 5–15 ms' } };
  for (const [bytes, name] of [
    [Buffer.from(writeSpeedscope(p)), 'x.speedscope.json'],
    [Buffer.from(pprofExporter.write(p) as Uint8Array), 'x.pb.gz'],
  ] as const) {
    const back = importProfile(new InputFile(bytes, name)).profile.meta;
    const want = carriedMeta(p.meta);
    for (const k of ['lens', 'backend', 'mode', 'rateHz', 'durationNs', 'overhead'] as const) assert.deepEqual(back[k], want[k], `${name}: ${k}`);
    assert.equal(back.environment.python?.version, '3.12.1', name);
    assert.equal(back.extra?.truncatedSamples, 3, name);
    assert.equal(back.extra?.intervals, 'uniform 5–15 ms', name);
    assert.equal(back.source?.format, name.endsWith('.json') ? 'speedscope' : 'pprof');
  }
});

/**
 * The profile inside pylens's own HTML and SVG outputs: each carries the lossless `.pylens`
 * encoding of what it shows (base64), so `report flame.html`, `diff a.svg b.svg` or
 * `convert flame.html -o x.pb.gz` read the exact profile back — a flamegraph is never a
 * dead end. HTML: `<script type="application/octet-stream" id="pylens-profile">…</script>`
 * (never executed; the page's CSP allows no fetches anyway); SVG: `<metadata
 * id="pylens-profile">…</metadata>`. The root element says so near the top of the file
 * (`data-pylens-profile="embedded"`), which is what detection looks for.
 */
import type { Profile } from '../model/profile.ts';
import { decodePylens, encodePylens } from './pylens.ts';
import { NOT_MINE, ParseError, type Importer, type InputFile, type NotMine } from './types.ts';

const ID = 'pylens-profile';
/** the attribute the root element (<html>, <svg>) carries when a profile is embedded */
export const EMBEDDED_MARK = 'data-pylens-profile="embedded"';

const b64 = (p: Profile) => Buffer.from(encodePylens(p)).toString('base64');

/** the element that carries `p` inside an HTML page */
export function embedInHtml(p: Profile): string {
  return `<script type="application/octet-stream" id="${ID}">${b64(p)}</script>`;
}

/** the element that carries `p` inside an SVG document */
export function embedInSvg(p: Profile): string {
  return `<metadata id="${ID}">${b64(p)}</metadata>`;
}

export const embeddedImporter: Importer = {
  id: 'pylens-embedded',
  extensions: ['.html', '.htm', '.svg'],
  detect: (input) => input.head(8192).includes(EMBEDDED_MARK),
  parse(input: InputFile): Profile | NotMine {
    const text = input.text();
    if (!text.slice(0, 8192).includes(EMBEDDED_MARK)) return NOT_MINE;
    const open = new RegExp(`<(script|metadata)\\b[^>]*\\bid="${ID}"[^>]*>`).exec(text);
    const fail = (offset: number, what: string) => new ParseError('pylens-embedded', input.label, { offset }, `${what}; export the profile again with pylens`);
    if (!open) throw fail(0, 'the file says it embeds its profile, but the pylens-profile element is missing (truncated or edited?)');
    const start = open.index + open[0].length;
    const end = text.indexOf('<', start);
    if (end < 0) throw fail(start, 'the embedded profile is not closed (a truncated file?)');
    const body = text.slice(start, end).trim();
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw fail(start, 'the embedded profile is not base64');
    return decodePylens(Buffer.from(body, 'base64'), input.label);
  },
};

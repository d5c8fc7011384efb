/**
 * The script embedded in pylens SVG flamegraphs (src/render/svg.ts), in the conventions
 * of Brendan Gregg's FlameGraph (written anew, not copied): click a frame to zoom (it
 * fills the width, its ancestors stay, faded), "Reset Zoom", Ctrl-F / "Search" with a
 * regular expression, magenta matches and "Matched: x%", details of the hovered frame.
 *
 * Frames are <g class="f" data-x data-w data-d> (start and width in value units, depth)
 * holding <title>label (value, P%)</title><rect/><text/>. Layout numbers come from
 * data-* attributes of the root <svg> (the document's, or the first <svg data-total> of an
 * HTML page). A differential flamegraph (src/render/diff.ts) also gives each frame its BASE
 * side's place (data-xb, data-wb) and has a "Widths" control (#widths) that swaps the two.
 */

function svgMain(): void {
  const root = document.querySelector('svg[data-total]') ?? document.documentElement;
  const num = (el: Element, name: string) => Number(el.getAttribute(name));
  const total = num(root, 'data-total');
  const width = num(root, 'data-width');
  const xpad = num(root, 'data-xpad');
  const charW = num(root, 'data-charw');
  const frames = Array.from(document.querySelectorAll<SVGGElement>('g.f'));
  const details = document.getElementById('details');
  const unzoomBtn = document.getElementById('unzoom');
  const widthsBtn = document.getElementById('widths');
  const searchBtn = document.getElementById('search');
  const matchedText = document.getElementById('matched');
  const eps = total * 1e-9;

  interface Info {
    x: number;
    w: number;
    /** the other widths' place (differential flamegraphs), swapped with x and w by the Widths control */
    xo: number;
    wo: number;
    d: number;
    label: string;
    rect: SVGRectElement;
    text: SVGTextElement;
    fill: string;
  }
  const info = new Map<SVGGElement, Info>();
  for (const g of frames) {
    const title = g.querySelector('title')?.textContent ?? '';
    const cut = title.lastIndexOf(' (');
    const rect = g.querySelector('rect')!;
    info.set(g, {
      x: num(g, 'data-x'),
      w: num(g, 'data-w'),
      xo: num(g, 'data-xb'),
      wo: num(g, 'data-wb'),
      d: num(g, 'data-d'),
      label: cut >= 0 ? title.slice(0, cut) : title,
      rect,
      text: g.querySelector('text')!,
      fill: rect.getAttribute('fill') ?? '',
    });
  }

  function fitText(f: Info, w: number): void {
    const fit = Math.floor((w - 3) / charW);
    let s = '';
    if (w >= 2 * charW + 3 && fit >= 3) s = f.label.length <= fit ? f.label : `${f.label.slice(0, fit - 2)}..`;
    f.text.textContent = s;
  }

  /** Lay frames out for the range [x, x + w) with the zoomed frame at depth d. */
  function layout(x: number, w: number, d: number): void {
    const ratio = (width - 2 * xpad) / w;
    for (const g of frames) {
      const f = info.get(g)!;
      let nx: number;
      let nw: number;
      if (!(f.w > 0)) {
        g.classList.add('hide');
        continue;
      }
      if (f.d < d && f.x <= x + eps && f.x + f.w >= x + w - eps) {
        nx = xpad;
        nw = width - 2 * xpad;
        g.classList.add('parent');
      } else if (f.d >= d && f.x >= x - eps && f.x + f.w <= x + w + eps) {
        nx = xpad + (f.x - x) * ratio;
        nw = f.w * ratio;
        g.classList.remove('parent');
      } else {
        g.classList.add('hide');
        continue;
      }
      g.classList.remove('hide');
      f.rect.setAttribute('x', nx.toFixed(2));
      f.rect.setAttribute('width', Math.max(0, nw).toFixed(2));
      f.text.setAttribute('x', (nx + 3).toFixed(2));
      fitText(f, nw);
    }
  }

  function zoom(g: SVGGElement): void {
    const f = info.get(g)!;
    if (f.d === 0) return unzoom();
    layout(f.x, f.w, f.d);
    unzoomBtn?.classList.remove('hide');
  }

  function unzoom(): void {
    layout(0, total, 0);
    unzoomBtn?.classList.add('hide');
  }

  let showingNew = true;
  function swapWidths(): void {
    for (const f of info.values()) {
      [f.x, f.xo] = [f.xo, f.x];
      [f.w, f.wo] = [f.wo, f.w];
      f.rect.classList.remove('hide');
    }
    showingNew = !showingNew;
    root.setAttribute('data-widths', showingNew ? 'new' : 'base');
    if (widthsBtn) widthsBtn.textContent = showingNew ? 'Widths: NEW (click for BASE)' : 'Widths: BASE (click for NEW)';
    unzoom();
  }

  function search(term: string | null): void {
    if (term === null) return;
    let re: RegExp | null = null;
    if (term !== '') {
      try {
        re = new RegExp(term);
      } catch {
        re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      }
    }
    const hits: Array<[number, number]> = [];
    for (const f of info.values()) {
      const m = re !== null && re.test(f.label);
      f.rect.setAttribute('fill', m ? 'rgb(230,0,230)' : f.fill);
      if (m) hits.push([f.x, f.x + f.w]);
    }
    // Matched = union of the matched frames' ranges (nested matches count once).
    hits.sort((a, b) => a[0] - b[0]);
    let sum = 0;
    let end = -Infinity;
    for (const [a, b] of hits) {
      if (a >= end) {
        sum += b - a;
        end = b;
      } else if (b > end) {
        sum += b - end;
        end = b;
      }
    }
    if (matchedText) matchedText.textContent = re ? `Matched: ${((100 * sum) / (total || 1)).toFixed(2)}%` : ' ';
    searchBtn?.classList.toggle('active', re !== null);
  }

  function askSearch(): void {
    search(window.prompt('Search frames (regular expression, e.g. ^json\\.):', ''));
  }

  document.addEventListener('click', (ev) => {
    const t = ev.target as Element | null;
    const g = t?.closest?.('g.f') as SVGGElement | null;
    if (g) zoom(g);
    else if (t && unzoomBtn && unzoomBtn.contains(t)) unzoom();
    else if (t && widthsBtn && widthsBtn.contains(t)) swapWidths();
    else if (t && searchBtn && searchBtn.contains(t)) askSearch();
  });
  document.addEventListener('mouseover', (ev) => {
    const g = (ev.target as Element | null)?.closest?.('g.f');
    if (g && details) details.textContent = `Function: ${g.querySelector('title')?.textContent ?? ''}`;
  });
  document.addEventListener('mouseout', (ev) => {
    const g = (ev.target as Element | null)?.closest?.('g.f');
    if (g && details) details.textContent = ' ';
  });
  window.addEventListener('keydown', (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'f') {
      ev.preventDefault();
      askSearch();
    } else if (ev.key === 'F3') {
      ev.preventDefault();
      askSearch();
    } else if (ev.key === 'Escape') {
      unzoom();
      search('');
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', svgMain);
else svgMain();

/**
 * File names as people read them: the shortest tail of each path that no other path in the
 * same view shares (`pydantic/main.py` and `uvicorn/main.py`, but `app.py` alone when it is
 * the only one), so base names are never ambiguous and paths never longer than they need.
 */

/** path → its shortest unambiguous tail among `paths` (whole path when nothing shorter is unique). */
export function shortestUniquePaths(paths: Iterable<string>): Map<string, string> {
  const uniq = [...new Set(paths)];
  const parts = new Map<string, string[]>();
  for (const p of uniq) parts.set(p, p.split('/').filter((x, i) => x !== '' || i === 0));
  const out = new Map<string, string>();
  // group by base name; grow the tail of every member of a clashing group until each is unique
  const tail = (segs: string[], k: number) => segs.slice(Math.max(0, segs.length - k)).join('/');
  const groups = new Map<string, string[]>();
  for (const p of uniq) {
    const base = tail(parts.get(p)!, 1);
    const g = groups.get(base);
    if (g) g.push(p);
    else groups.set(base, [p]);
  }
  for (const members of groups.values()) {
    if (members.length === 1) {
      out.set(members[0]!, tail(parts.get(members[0]!)!, 1));
      continue;
    }
    for (const p of members) {
      const segs = parts.get(p)!;
      let k = 1;
      for (; k < segs.length; k++) {
        const mine = tail(segs, k);
        if (!members.some((q) => q !== p && tail(parts.get(q)!, k) === mine)) break;
      }
      out.set(p, k >= segs.length ? p : tail(segs, k));
    }
  }
  return out;
}

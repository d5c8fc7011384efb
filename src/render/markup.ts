/** Text and numbers as the HTML and SVG writers put them in markup. */

/** `& < > "` escaped: safe in element text and in double-quoted attributes */
export const escapeMarkup = (s: string): string => s.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));

/** a coordinate in an attribute: short, two decimals at most, no exponent */
export const attrNumber = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, ''));

/** a value in a data attribute: 12 significant digits, what the page's script reads back */
export const dataNumber = (v: number): string => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12))));

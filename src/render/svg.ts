// PLACEHOLDER: being written now; replaced before this lands.
import { type Exporter } from '../formats/types.ts';

export const svgExporter: Exporter = { id: 'svg', extension: '.svg', lossless: false, write: () => { throw new Error('not written yet'); } };

// PLACEHOLDER: being written now; replaced before this lands.
import { type Exporter } from '../formats/types.ts';

export const topExporter: Exporter = { id: 'top', extension: '.top.txt', lossless: false, write: () => { throw new Error('not written yet'); } };

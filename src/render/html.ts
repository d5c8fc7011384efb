// PLACEHOLDER: being written now; replaced before this lands.
import { type Exporter } from '../formats/types.ts';

export const htmlExporter: Exporter = { id: 'html', extension: '.html', lossless: false, write: () => { throw new Error('not written yet'); } };

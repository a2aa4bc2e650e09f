/** Writes config/gateway.schema.json from the config schema (`npm run config:schema`). */
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../config/json-schema.js';

const target = new URL('../../config/gateway.schema.json', import.meta.url);
writeFileSync(target, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target.pathname}`);

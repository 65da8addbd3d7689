// Parses an AsyncAPI document with @asyncapi/parser and fails on any error-severity diagnostic.
// Usage: node validate.mjs [path/to/asyncapi.yaml]   (default: ../../schemas/asyncapi.yaml)
// Relative $refs (the JSON Schemas next to the document) are resolved from the file's location.
import { Parser, fromFile } from '@asyncapi/parser';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const target = path.resolve(process.argv[2] ?? path.join(here, '..', '..', 'schemas', 'asyncapi.yaml'));
const SEVERITY = ['error', 'warning', 'info', 'hint'];

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, target).parse();
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  console.log(`${SEVERITY[d.severity] ?? d.severity} ${d.code} at ${where}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (errors.length > 0 || document === undefined) {
  console.error(`${target}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`${target}: valid AsyncAPI ${document.version()} ` +
  `(${document.channels().length} channels, ${document.operations().length} operations)`);

/**
 * A JSON Schema (draft 2020-12) validator for the keywords the OpenAPI
 * description of `src/server/http/openapi.ts` uses, and only those:
 * `unknownKeywords` lists any other keyword a schema holds, so that a test
 * fails instead of a keyword being silently ignored. (No JSON Schema library
 * is installed; this covers what the description needs.)
 */

type Schema = { readonly [keyword: string]: unknown };

/** Keywords `validate` checks, and the ones that only annotate. */
const CHECKED = [
  '$ref', 'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'items',
  'minItems', 'maxItems', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'oneOf',
];
const ANNOTATIONS = ['description', 'title'];

/** Resolves `#/…` references against the document that holds the schemas. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`not a local reference: ${ref}`);
  let at: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof at !== 'object' || at === null || !(key in at)) throw new Error(`unresolved reference: ${ref}`);
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(v: unknown, type: string): boolean {
  const actual = typeOf(v);
  return actual === type || (type === 'number' && actual === 'integer');
}

/** Every way `value` breaks `schema`, each as `path: what`; empty when it conforms. */
export function validate(root: unknown, schema: unknown, value: unknown, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  const s = schema as Schema;
  const errors: string[] = [];
  const fail = (what: string) => errors.push(`${path}: ${what}`);
  if (typeof s.$ref === 'string') errors.push(...validate(root, resolvePointer(root, s.$ref), value, path));
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => hasType(value, t))) fail(`is ${typeOf(value)}, not ${types.join(' or ')}`);
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => e === value)) fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if ('const' in s && s.const !== value) fail(`${JSON.stringify(value)} is not ${JSON.stringify(s.const)}`);
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) fail(`${value} < ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) fail(`${value} > ${s.maximum}`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof s.minLength === 'number' && length < s.minLength) fail(`shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && length > s.maxLength) fail(`longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) fail(`does not match ${s.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) fail(`fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) fail(`more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((item, i) => errors.push(...validate(root, s.items, item, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const properties = (s.properties ?? {}) as Record<string, unknown>;
    for (const name of (s.required ?? []) as string[]) if (!(name in obj)) fail(`lacks "${name}"`);
    for (const [name, v] of Object.entries(obj)) {
      if (name in properties) errors.push(...validate(root, properties[name], v, `${path}.${name}`));
      else if (s.additionalProperties !== undefined) errors.push(...validate(root, s.additionalProperties, v, `${path}.${name}`));
    }
  }
  if (Array.isArray(s.oneOf)) {
    const passing = s.oneOf.filter((alt) => validate(root, alt, value, path).length === 0).length;
    if (passing !== 1) fail(`matches ${passing} of the oneOf alternatives, not exactly 1`);
  }
  return errors;
}

/** Keywords of `schema` (and the schemas inside it) that `validate` neither checks nor knows as annotations. */
export function unknownKeywords(schema: unknown, path = '$'): string[] {
  if (typeof schema === 'boolean') return [];
  if (typeof schema !== 'object' || schema === null) return [`${path}: not a schema`];
  const s = schema as Schema;
  const out: string[] = [];
  for (const [keyword, v] of Object.entries(s)) {
    if (!CHECKED.includes(keyword) && !ANNOTATIONS.includes(keyword)) out.push(`${path}.${keyword}`);
    if (keyword === 'properties') {
      for (const [name, sub] of Object.entries(v as Schema)) out.push(...unknownKeywords(sub, `${path}.properties.${name}`));
    }
    if (keyword === 'items' || keyword === 'additionalProperties') out.push(...unknownKeywords(v, `${path}.${keyword}`));
    if (keyword === 'oneOf') (v as unknown[]).forEach((sub, i) => out.push(...unknownKeywords(sub, `${path}.oneOf[${i}]`)));
  }
  return out;
}

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Swagger names a schema after its DTO class: two classes with one name would overwrite each other. */
it('gives every request DTO a unique class name', () => {
  const files: string[] = [];
  const walk = (dir: string) => readdirSync(dir).forEach((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : f.endsWith('.ts') && files.push(join(dir, f))));
  walk(join(__dirname, '..', '..', 'src'));
  const names = files.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/class (\w+) extends createZodDto/g)].map((m) => m[1]));
  expect(names.length).toBeGreaterThan(20);
  expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
});

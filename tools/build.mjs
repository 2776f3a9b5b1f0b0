#!/usr/bin/env node
// Compiles one entry folder and the libraries under libs/ to CommonJS with SWC (decorator metadata kept
// for NestJS), rewriting the tsconfig.base.json path aliases to relative requires.
// Usage: node tools/build.mjs <app>     → dist/<app>/apps/<app>/src/main.js   (sources in apps/<app>/src)
//        node tools/build.mjs <folder>  → dist/<folder>/<folder>/…           (sources in <folder>, e.g. bench)
import { readFileSync, readdirSync, statSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { transformFileSync } from '@swc/core';

const root = new URL('..', import.meta.url).pathname;
const app = process.argv[2];
const entry = [join(root, 'apps', app ?? '', 'src'), join(root, app ?? '')].find((dir) => app && existsSync(dir));
if (!entry || entry === root) {
  console.error(`usage: node tools/build.mjs <app | folder>  (neither apps/${app ?? ''}/src nor ${app ?? ''} exists)`);
  process.exit(2);
}
const swcrc = JSON.parse(readFileSync(join(root, '.swcrc'), 'utf8'));
const { paths } = JSON.parse(readFileSync(join(root, 'tsconfig.base.json'), 'utf8')).compilerOptions;
const options = {
  ...swcrc,
  swcrc: false,
  jsc: { ...swcrc.jsc, baseUrl: root, paths },
};
const isTest = (f) => /\.(spec|integration-spec|vm-spec|net-spec)\.ts$/.test(f) || f.includes('__tests__');

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sources(p);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts') && !isTest(p)) yield p;
  }
}

const out = join(root, 'dist', app);
rmSync(out, { recursive: true, force: true });
const dirs = [entry, ...readdirSync(join(root, 'libs')).map((l) => join(root, 'libs', l, 'src'))];
let count = 0;
for (const dir of dirs.filter(existsSync)) {
  for (const file of sources(dir)) {
    const target = join(out, relative(root, file)).replace(/\.ts$/, '.js');
    const { code, map } = transformFileSync(file, {
      ...options,
      filename: file,
      sourceFileName: relative(dirname(target), file),
    });
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, map ? `${code}\n//# sourceMappingURL=${target.split('/').pop()}.map` : code);
    if (map) writeFileSync(`${target}.map`, map);
    count++;
  }
}
console.log(`built ${app}: ${count} files → ${relative(root, out)}`);

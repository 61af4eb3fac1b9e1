// Builds the console into dist/ (or the folder given as the first
// argument): dist/index.html, and dist/assets/main-<hash>.js and .css,
// minified, their names hashed so they can be cached for good. The
// relay-client source is bundled in (from ../clients/js/src). The output is
// committed: the gateway embeds it at compile time, with no Node there.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = resolve(process.argv[2] ?? join(root, 'dist'));

/** Builds into `dir` (emptied first); returns the files written, relative to it. */
export async function build(dir = out) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'assets'), { recursive: true });
  const r = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ['src/main.tsx'],
    bundle: true,
    format: 'esm',
    minify: true,
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    alias: { 'relay-client': '../clients/js/src/index.ts' },
    legalComments: 'none',
    entryNames: '[name]-[hash]',
    outdir: join(dir, 'assets'),
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(r.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`unexpected build outputs: ${outputs.join(', ')}`);
  const html = readFileSync(join(root, 'src/index.html'), 'utf8').replace('{{js}}', js).replace('{{css}}', css);
  writeFileSync(join(dir, 'index.html'), html);
  return ['index.html', `assets/${css}`, `assets/${js}`];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = await build();
  console.log(`built ${files.join(', ')} into ${out}`);
}

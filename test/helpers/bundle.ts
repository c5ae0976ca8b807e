/**
 * Bundles code for a browser the way a user's bundler would: esbuild with
 * `platform: 'browser'` (so the `"browser"` export condition applies),
 * resolving `wsconn` and `wsconn/wsjson` through package.json to dist/
 * (`npm test` builds it first). Any import of a Node built-in fails the
 * bundle, naming the importer.
 */
import { builtinModules } from 'node:module';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';
import { repoRoot } from './example-process.js';

const builtins = new Set(builtinModules);

/** Fails the build on `node:…` or a bare Node built-in such as `buffer`. */
const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.path.startsWith('node:') || builtins.has(args.path)) {
        return { errors: [{ text: `Node built-in '${args.path}' imported by ${args.importer} in a browser bundle` }] };
      }
      return undefined;
    });
  },
};

/** A bundle: its code, and the files it was made of (relative to the repository). */
export interface Bundle {
  code: string;
  inputs: string[];
  /** Bytes of the code minified (when `minify`) and gzipped at level 9. */
  gzipBytes: number;
}

/**
 * Bundles `entry` (a file, or `{ contents }` of an ES module resolved from
 * the repository root) for the browser, as an ES module.
 * @throws the esbuild failure, listing every Node built-in imported.
 */
export async function bundleForBrowser(entry: string | { contents: string }, minify = false): Promise<Bundle> {
  const source = typeof entry === 'string' ? { entryPoints: [entry] } : { stdin: { contents: entry.contents, resolveDir: repoRoot, loader: 'ts' as const } };
  const result = await build({
    ...source,
    absWorkingDir: repoRoot,
    bundle: true,
    minify,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [noNodeBuiltins],
  });
  const code = result.outputFiles[0]!.text;
  return { code, inputs: Object.keys(result.metafile.inputs), gzipBytes: gzipSync(code, { level: 9 }).length };
}

/**
 * The package as a user gets it. `npm pack` runs on a copy of the sources
 * (so its prepack/prepare scripts build dist/ from scratch, as on a fresh
 * clone), the tarball is installed into a temporary project, and a strict
 * TypeScript program (fixtures/package-smoke/main.ts) is compiled against it
 * under `nodenext` and under `bundler` resolution, then run: a server with
 * `accept()`, a `dial()` client, a wsjson and a netconn round trip.
 *
 * The git-install case clones the repository's committed HEAD and installs
 * it with `npm install git+file://…`, which must run `prepare` to build.
 *
 * npm runs offline against the tarball, with the repository's own undici
 * linked in; the git install may fill gaps in npm's cache from the registry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { leakCheck } from './helpers/leak.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/package-smoke/main.ts', import.meta.url));
const tsc = join(repo, 'node_modules/typescript/bin/tsc');

/**
 * The environment for child npm and node processes: without the variables
 * `npm test` sets (npm_config_local_prefix would point the child npm back at
 * this repository), and with npm 11's strict install-script policy on where
 * that npm knows it, so that the allowScripts recipes in the README are
 * checked too (older npm versions ignore an unknown config variable).
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && name !== 'INIT_CWD') env[name] = value;
  }
  env.npm_config_strict_allow_scripts = 'true';
  env.npm_config_update_notifier = 'false';
  return env;
}

/** Runs a command to completion within `ms`; rejects with its output on failure. */
async function sh(file: string, args: string[], cwd: string, ms: number): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, env: childEnv(), timeout: ms, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${(err as Error).message}\n${stdout}\n${stderr}`);
  }
}

const npm = (args: string[], cwd: string, ms: number): Promise<string> => sh('npm', args, cwd, ms);
const node = (args: string[], cwd: string, ms = 20_000): Promise<string> => sh(process.execPath, args, cwd, ms);

/** What main.ts prints when everything worked. */
const expected = [
  'text: hello',
  'closed: 1000 true',
  'wsjson: {"id":7,"result":6}',
  "after the server's close: 1000",
  'netconn: bytes through netconn',
  'done',
].join('\n');

/**
 * The TypeScript settings a consumer might use; each compiles main.ts into
 * its own folder. The first also checks the library's declaration files
 * themselves (`skipLibCheck: false`, which costs most of a compile's time);
 * the others check the program against them.
 */
const configs: Record<string, Record<string, unknown>> = {
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: false },
  bundler: { module: 'esnext', moduleResolution: 'bundler', skipLibCheck: true },
  preserve: { module: 'preserve', moduleResolution: 'bundler', skipLibCheck: true },
};

/** Writes a consumer project whose package.json has `extra` merged in. */
async function consumer(dir: string, extra: object): Promise<void> {
  await mkdir(dir, { recursive: true });
  const manifest = { name: 'wsconn-consumer', version: '1.0.0', private: true, type: 'module', ...extra };
  await writeFile(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
}

/** Compiles main.ts in `dir` strictly, with one of `configs`. */
async function compile(dir: string, name: string): Promise<string> {
  const outDir = join(dir, 'out', name);
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2022'],
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      typeRoots: [join(repo, 'node_modules/@types')],
      types: ['node'],
      ...configs[name],
      outDir,
    },
    files: ['main.ts'],
  };
  await writeFile(join(dir, `tsconfig.${name}.json`), JSON.stringify(tsconfig, null, 2));
  await node([tsc, '-p', `tsconfig.${name}.json`], dir, 60_000);
  return join(outDir, 'main.js');
}

describe('the packed package, installed into a new project', { timeout: 240_000 }, () => {
  const checkLeaks = leakCheck();
  let tmp: string;
  let tarball: string;
  let app: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wsconn-package-'));
    // A copy of what a fresh clone has, with dist/ absent, and this
    // repository's node_modules for the build.
    const source = join(tmp, 'source');
    for (const entry of ['package.json', 'tsconfig.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'src']) {
      await cp(join(repo, entry), join(source, entry), { recursive: true });
    }
    await symlink(join(repo, 'node_modules'), join(source, 'node_modules'), 'dir');
    const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', tmp], source, 120_000)) as [{ filename: string }];
    tarball = join(tmp, packed[0].filename);

    app = join(tmp, 'app');
    // npm 11 lists a tarball's `prepare` as an unreviewed install script
    // although it never runs it for a tarball; denying it is the honest
    // answer (`npm install-scripts deny wsconn` writes the same entry).
    await consumer(app, { allowScripts: { [`file:${tarball}`]: false } });
    const undici = join(repo, 'node_modules/undici');
    // --ignore-scripts: a linked directory's own `prepare` (undici's) would run otherwise.
    await npm(['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball, undici], app, 60_000);
    await cp(fixture, join(app, 'main.ts'));
  });

  after(async () => {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
    await checkLeaks();
  });

  it('ships dist with declaration maps that resolve to the shipped sources, and the license', { timeout: 10_000 }, async () => {
    const installed = join(app, 'node_modules/wsconn');
    const files = await readdir(installed);
    for (const name of ['LICENSE', 'README.md', 'package.json', 'dist', 'src']) assert.ok(files.includes(name), `${name} missing: ${files.join(', ')}`);
    assert.match(await readFile(join(installed, 'LICENSE'), 'utf8'), /MIT License[\s\S]*Copyright \(c\) 2026 the wsconn authors/);
    for (const entry of ['index', 'wsjson/index', 'netconn/index']) {
      const mapFile = join(installed, 'dist', `${entry}.d.ts.map`);
      const map = JSON.parse(await readFile(mapFile, 'utf8')) as { sources: string[] };
      for (const source of map.sources) {
        await readFile(resolve(dirname(mapFile), source)); // throws if the map points nowhere
      }
    }
    assert.ok(!(await readdir(join(installed, 'src'))).includes('tsconfig.json'), 'src/tsconfig.json extends a file that is not shipped');
  });

  for (const name of Object.keys(configs)) {
    it(`compiles strictly with ${JSON.stringify(configs[name])} and runs: accept, dial, wsjson, netconn`, { timeout: 90_000 }, async () => {
      const main = await compile(app, name);
      assert.equal((await node([main], app)).trim(), expected);
    });
  }

  it('resolves the browser, worker and workerd conditions to the shipped browser build', { timeout: 20_000 }, async () => {
    const installed = join(app, 'node_modules/wsconn');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, unknown>> };
    for (const condition of ['browser', 'worker', 'workerd']) {
      const target = manifest.exports['.']![condition] as { types: string; default: string };
      for (const file of [target.types, target.default]) await readFile(join(installed, file)); // throws if it is not shipped
    }
    // Node resolves the condition as a bundler would; the browser build exports policyViolationCode, the Node build does not.
    const script = "const m = await import('wsconn'); console.log(typeof m.dial, m.policyViolationCode)";
    for (const condition of ['browser', 'worker', 'workerd']) {
      assert.equal((await node([`--conditions=${condition}`, '--input-type=module', '-e', script], app)).trim(), 'function 4008');
    }
    assert.equal((await node(['--input-type=module', '-e', script], app)).trim(), 'function undefined');
  });

  it('loads with require() where Node can require ES modules', { timeout: 20_000 }, async (t) => {
    if (!(process.features as { require_module?: boolean }).require_module) {
      t.skip(`Node ${process.version} cannot require() an ES module (it needs 20.19+ or 22.12+)`);
      return;
    }
    const script = "const ws = require('wsconn'); const { read } = require('wsconn/wsjson'); const { netConn } = require('wsconn/netconn');" +
      'console.log(typeof ws.dial, typeof ws.accept, typeof read, typeof netConn)';
    assert.equal((await node(['--input-type=commonjs', '-e', script], app)).trim(), 'function function function function');
  });

  it('installs from a git clone: `prepare` builds dist/', { timeout: 150_000 }, async () => {
    const clone = join(tmp, 'clone');
    await sh('git', ['clone', '--quiet', '--no-hardlinks', repo, clone], tmp, 60_000);
    const spec = `git+file://${clone}`;
    const gitApp = join(tmp, 'git-app');
    // A git dependency's `prepare` is an install script to npm 11: approve it.
    await consumer(gitApp, { allowScripts: { [spec]: true } });
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', spec], gitApp, 120_000);
    await cp(join(app, 'out/nodenext/main.js'), join(gitApp, 'main.js'));
    assert.equal((await node(['main.js'], gitApp)).trim(), expected);
  });
});

/**
 * Output: a plain-text table per scenario with ratios, and a JSON file.
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ImplName } from './adapters/types.js';
import type { Cell, Row, Table } from './runner.js';
import type { Window } from './timing.js';
import { median } from './timing.js';

/** The load average when the run started (this module loads first thing). */
const loadAtStart = os.loadavg();

function number(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

function cellText(cell: Cell | undefined): string {
  if (cell === undefined) return '—';
  if (cell.error !== undefined || cell.value === undefined) return 'FAILED';
  let text = number(cell.value);
  if (cell.spread !== undefined) text += ` ±${Math.round(cell.spread * 50)}%`;
  if (cell.extra !== undefined) text += ` (${cell.extra})`;
  if (cell.note !== undefined) text += ' [!]';
  return text;
}

/**
 * `a`'s value over `b`'s. For timed cases it is the median of the per-round
 * ratios: the rounds were interleaved, so each pair saw the same machine.
 */
export function ratio(row: Row, a: ImplName, b: ImplName): number | undefined {
  const x = row.cells[a];
  const y = row.cells[b];
  if (x?.value === undefined || y?.value === undefined || x.error !== undefined || y.error !== undefined) return undefined;
  const xs = x.rounds;
  const ys = y.rounds;
  if (xs !== undefined && ys !== undefined && xs.length === ys.length && xs.length > 0) {
    return median(xs.map((v, i) => v / (ys[i] as number)));
  }
  return x.value / y.value;
}

function ratioText(row: Row, a: ImplName, b: ImplName): string {
  const r = ratio(row, a, b);
  return r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}×`;
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
}

/** The ratio columns every table has (unless it leaves out one of the pair). */
const ratioPairs = [
  ['wsconn', 'ws'],
  ['wsconn', 'net'],
] as const;

/** Renders one table; footnotes list failures and server-side anomalies. */
export function formatTable(table: Table, impls: readonly ImplName[]): string {
  const applies = (impl: ImplName): boolean => table.impls?.includes(impl) ?? true;
  const shown = impls.filter(applies);
  const pairs = ratioPairs.filter(([a, b]) => applies(a) && applies(b));
  const head = ['case', 'unit', ...shown, ...pairs.map(([a, b]) => `${a}/${b}`)];
  const body = table.rows.map((row) => [
    row.label,
    row.lowerIsBetter ? `${row.unit} (lower is better)` : row.unit,
    ...shown.map((impl) => cellText(row.cells[impl])),
    ...pairs.map(([a, b]) => ratioText(row, a, b)),
  ]);
  const widths = head.map((_, i) => Math.max(...[head, ...body].map((r) => (r[i] ?? '').length)));
  const lines = [table.title, pad(head, widths), ...body.map((r) => pad(r, widths))];
  for (const note of table.notes ?? []) lines.push(`  ${note}`);
  for (const row of table.rows) {
    for (const impl of shown) {
      const cell = row.cells[impl];
      if (cell?.error !== undefined) lines.push(`  ! ${row.label} · ${impl} FAILED: ${cell.error}`);
      else if (cell?.note !== undefined) lines.push(`  ! ${row.label} · ${impl}: ${cell.note}`);
    }
  }
  return lines.join('\n');
}

/** Writes the results to `.bench-out/bench-<time>.json` and `latest.json`; returns the path. */
export async function writeJson(
  tables: Table[],
  window: Window,
  info: Map<string, Record<string, string>>,
): Promise<string> {
  const dir = fileURLToPath(new URL('../.bench-out/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const date = new Date().toISOString();
  const result = {
    date,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpus: os.cpus().map((cpu) => cpu.model),
    window,
    loadAverage: { start: loadAtStart, end: os.loadavg() },
    info: Object.fromEntries(info),
    tables: tables.map((table) => ({
      ...table,
      rows: table.rows.map((row) => ({
        ...row,
        ratios: { wsconnToWs: ratio(row, 'wsconn', 'ws') ?? null, wsconnToNet: ratio(row, 'wsconn', 'net') ?? null },
      })),
    })),
  };
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const file = `${dir}bench-${date.replace(/[:.]/g, '-')}.json`;
  await writeFile(file, json);
  await writeFile(`${dir}latest.json`, json);
  return file;
}

/**
 * Pure shell-pattern matching with the syntax of Go's `path.Match`, used for
 * `originPatterns`. Matching is case-insensitive: pattern and name are both
 * lower-cased first, as host names are.
 * @module
 */

/** One compiled element of a pattern. */
type Token =
  | { kind: 'literal'; cp: number }
  | { kind: 'one' }
  | { kind: 'star' }
  | { kind: 'class'; negated: boolean; ranges: Array<[number, number]> };

const slash = 0x2f;
const backslash = 0x5c;

/**
 * Throws a descriptive Error if `pattern` is not a well-formed pattern:
 * an unclosed `[`, an empty class, a `-` without both ends of a range, or a
 * trailing `\`. Well-formed patterns return without effect.
 *
 * @throws Error naming the pattern and what is wrong with it.
 */
export function validateGlob(pattern: string): void {
  compile(pattern.toLowerCase());
}

/**
 * Reports whether `name` matches the whole of `pattern`, ignoring case.
 * `*` matches any run of characters other than `/`, `?` one character other
 * than `/`, `[abc]`, `[a-z]` and `[^a-z]` one character in (or not in) the
 * class, and `\` makes the next character literal.
 *
 * @throws Error for a malformed pattern (see {@link validateGlob}).
 * @example
 * ```ts
 * globMatch('*.example.com', 'API.example.com'); // true
 * globMatch('*.example.com', 'example.com');     // false
 * ```
 */
export function globMatch(pattern: string, name: string): boolean {
  const tokens = compile(pattern.toLowerCase());
  const chars = codePoints(name.toLowerCase());
  // matches[j]: tokens from index i onwards match chars from index j onwards.
  // Filled from the last token backwards, so each row needs only the next one.
  let next = new Array<boolean>(chars.length + 1).fill(false);
  next[chars.length] = true;
  for (let i = tokens.length - 1; i >= 0; i--) {
    const token = tokens[i]!;
    const row = new Array<boolean>(chars.length + 1).fill(false);
    for (let j = chars.length; j >= 0; j--) {
      if (token.kind === 'star') {
        row[j] = next[j]! || (j < chars.length && chars[j] !== slash && row[j + 1]!);
      } else {
        row[j] = j < chars.length && matchesOne(token, chars[j]!) && next[j + 1]!;
      }
    }
    next = row;
  }
  return next[0]!;
}

function matchesOne(token: Exclude<Token, { kind: 'star' }>, cp: number): boolean {
  switch (token.kind) {
    case 'literal':
      return cp === token.cp;
    case 'one':
      return cp !== slash;
    case 'class': {
      const inClass = token.ranges.some(([lo, hi]) => lo <= cp && cp <= hi);
      return inClass !== token.negated;
    }
  }
}

function compile(pattern: string): Token[] {
  const cps = codePoints(pattern);
  const tokens: Token[] = [];
  let i = 0;
  while (i < cps.length) {
    const cp = cps[i]!;
    if (cp === 0x2a /* * */) {
      // Consecutive stars match the same as one.
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
      i++;
    } else if (cp === 0x3f /* ? */) {
      tokens.push({ kind: 'one' });
      i++;
    } else if (cp === 0x5b /* [ */) {
      i = compileClass(pattern, cps, i + 1, tokens);
    } else if (cp === backslash) {
      const escaped = cps[i + 1];
      if (escaped === undefined) throw badPattern(pattern, 'it ends with an unescaped "\\"');
      tokens.push({ kind: 'literal', cp: escaped });
      i += 2;
    } else {
      tokens.push({ kind: 'literal', cp });
      i++;
    }
  }
  return tokens;
}

/** Parses a class starting just after its `[`; returns the index after its `]`. */
function compileClass(pattern: string, cps: number[], start: number, tokens: Token[]): number {
  let i = start;
  const negated = cps[i] === 0x5e; /* ^ */
  if (negated) i++;
  const ranges: Array<[number, number]> = [];
  for (;;) {
    const cp = cps[i];
    if (cp === undefined) throw badPattern(pattern, 'a "[" is never closed');
    // A "]" first in the class closes an empty class, which Go rejects.
    if (cp === 0x5d /* ] */) {
      if (ranges.length === 0) throw badPattern(pattern, 'a character class is empty');
      tokens.push({ kind: 'class', negated, ranges });
      return i + 1;
    }
    const lo = classChar(pattern, cps, i);
    i = lo.next;
    let hi = lo;
    if (cps[i] === 0x2d /* - */) {
      hi = classChar(pattern, cps, i + 1);
      i = hi.next;
    }
    ranges.push([lo.cp, hi.cp]);
  }
}

/** Reads one possibly escaped character of a class; "-" and "]" must be escaped. */
function classChar(pattern: string, cps: number[], at: number): { cp: number; next: number } {
  const cp = cps[at];
  if (cp === undefined) throw badPattern(pattern, 'a "[" is never closed');
  if (cp === 0x2d || cp === 0x5d) {
    throw badPattern(pattern, `a character class has an unescaped "${String.fromCodePoint(cp)}" where a character belongs`);
  }
  if (cp !== backslash) return { cp, next: at + 1 };
  const escaped = cps[at + 1];
  if (escaped === undefined) throw badPattern(pattern, 'it ends with an unescaped "\\"');
  return { cp: escaped, next: at + 2 };
}

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}

function badPattern(pattern: string, why: string): Error {
  return new Error(`malformed pattern ${JSON.stringify(pattern)}: ${why}`);
}

// Command-line flags of every harness: `--flag value`, `--flag=value` and
// bare switches, each checked as it is read; `--help` prints the usage.

export interface Flag<A> {
  /** Applies the flag's value (empty for a switch) to the arguments. */
  set(a: A, value: string, flag: string): void;
  /** Takes no value. */
  switch?: true;
}

/** A whole number in [min, max], or an error that names the flag. */
export function int(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (v === '' || !Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${flag}: expected a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

/** A comma-separated list of whole numbers, each in [min, max]. */
export const ints = (flag: string, v: string, min: number, max: number): number[] => v.split(',').map((x) => int(flag, x, min, max));

/** A comma-separated list of names, each one of `known`, without repeats. */
export function choices<T extends string>(flag: string, v: string, known: readonly T[]): T[] {
  return [
    ...new Set(
      v.split(',').map((s) => {
        if (!known.includes(s as T)) throw new Error(`${flag}: unknown "${s}" (known: ${known.join(', ')})`);
        return s as T;
      }),
    ),
  ];
}

/** A flag that takes a value. */
export const valued = <A>(set: (a: A, value: string, flag: string) => void): Flag<A> => ({ set });

/** A flag that takes no value. */
export const toggle = <A>(set: (a: A) => void): Flag<A> => ({ set: (a) => set(a), switch: true });

/**
 * Reads `argv` into `a` (its defaults) with `flags`; an unknown flag throws
 * with `usage`. `--help` prints `usage` and exits.
 */
export function parseFlags<A>(argv: readonly string[], a: A, flags: Record<string, Flag<A>>, usage: string): A {
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    if (flag === '--help' || flag === '-h') {
      console.log(`${usage}\nflags: ${Object.keys(flags).join(' ')}`);
      process.exit(0);
    }
    const f = flags[flag];
    if (!f) throw new Error(`unknown argument ${flag}: ${usage}`);
    if (f.switch) {
      if (inline !== undefined) throw new Error(`${flag} takes no value`);
      f.set(a, '', flag);
      continue;
    }
    f.set(a, inline ?? argv[++i] ?? '', flag);
  }
  return a;
}

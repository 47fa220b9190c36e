// The compact name set (src/lists/name-set.ts) against a naive reference: for random entries
// and random queries, both give the same entry (action, kind, name, line).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { runSync } from '../../src/lists/build.js';
import { NameSet, NameSetBuilder } from '../../src/lists/name-set.js';
import { ACTION_NAMES, type ActionCode, type EntryKind } from '../../src/lists/types.js';

interface Entry {
  name: string;
  kind: EntryKind;
  action: ActionCode;
}

/** The first entry for each (name, half) wins: what the builder promises, written plainly. */
class Reference {
  private readonly exact = new Map<string, { action: ActionCode; line: number; subtree: boolean }>();
  private readonly under = new Map<string, { action: ActionCode; line: number; subtree: boolean }>();

  constructor(entries: readonly Entry[]) {
    entries.forEach((e, i) => {
      const line = i + 1;
      const subtree = e.kind === 'subtree';
      if (e.kind !== 'wildcard' && !this.exact.has(e.name))
        this.exact.set(e.name, { action: e.action, line, subtree });
      if (e.kind !== 'exact' && !this.under.has(e.name))
        this.under.set(e.name, { action: e.action, line, subtree });
    });
  }

  lookup(query: string): { action: string; kind: EntryKind; entry: string; line: number } | null {
    let q = query.toLowerCase();
    if (q.endsWith('.')) q = q.slice(0, -1);
    // Labels as the wire peek escapes them: "\." inside a label, "\\" for a backslash.
    const labels: string[] = [];
    let current = '';
    for (let i = 0; i < q.length; i++) {
      if (q[i] === '\\' && i + 1 < q.length) {
        current += q[i] + q[i + 1];
        i++;
      } else if (q[i] === '.') {
        labels.push(current);
        current = '';
      } else current += q[i];
    }
    labels.push(current);
    const found = (
      map: Map<string, { action: ActionCode; line: number; subtree: boolean }>,
      name: string,
      wild: boolean,
    ) => {
      const e = map.get(name);
      if (e === undefined) return null;
      const kind: EntryKind = e.subtree ? 'subtree' : wild ? 'wildcard' : 'exact';
      return {
        action: ACTION_NAMES[e.action],
        kind,
        entry: kind === 'wildcard' ? `*.${name}` : name,
        line: e.line,
      };
    };
    const whole = labels.join('.');
    if (!whole.includes('\\')) {
      const hit = found(this.exact, whole, false);
      if (hit !== null) return hit;
    }
    for (let i = 1; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      if (suffix.includes('\\')) continue;
      const hit = found(this.under, suffix, true);
      if (hit !== null) return hit;
    }
    return null;
  }
}

function build(entries: readonly Entry[]): NameSet {
  const builder = new NameSetBuilder(4, 16); // small estimates: the arrays must grow
  entries.forEach((e, i) => {
    builder.add(e.name, e.kind, e.action, i + 1, () => {});
  });
  return runSync(builder.finish(() => {}));
}

function answer(set: NameSet, query: string) {
  const slot = set.lookup(query);
  if (slot < 0) return null;
  return { action: set.action(slot), kind: set.kind(slot), entry: set.entry(slot), line: set.line(slot) };
}

// Few distinct labels, so random names share suffixes and collide often.
const label = fc.constantFrom('a', 'b', 'c', 'xn--d', 'e-f', '_g', 'h1');
const listed = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const entry = fc.record({
  name: listed,
  kind: fc.constantFrom<EntryKind>('exact', 'subtree', 'wildcard'),
  action: fc.constantFrom<ActionCode>(0, 1, 2, 3, 4),
});
const queryLabel = fc.oneof(
  { weight: 8, arbitrary: label },
  { weight: 1, arbitrary: fc.constantFrom('A', 'XN--D', 'E-F', 'zz') },
  // Labels that hold an escaped dot or backslash, as the wire peek writes them.
  { weight: 1, arbitrary: fc.constantFrom('a\\.b', 'c\\\\', '\\\\', 'b\\.') },
);
const query = fc
  .tuple(fc.array(queryLabel, { minLength: 1, maxLength: 6 }), fc.boolean())
  .map(([l, dot]) => l.join('.') + (dot ? '.' : ''));

test('name set answers exactly like the naive reference (exact, subtree, wildcard, case, escapes)', () => {
  fc.assert(
    fc.property(
      fc.array(entry, { maxLength: 40 }),
      fc.array(query, { minLength: 1, maxLength: 30 }),
      (entries, queries) => {
        const set = build(entries);
        const ref = new Reference(entries);
        for (const q of queries)
          assert.deepEqual(answer(set, q), ref.lookup(q), `query ${JSON.stringify(q)}`);
        for (const e of entries)
          assert.deepEqual(answer(set, e.name), ref.lookup(e.name), `listed ${e.name}`);
      },
    ),
    { numRuns: 500 },
  );
});

test('name set: distinct names counted once, whatever their kinds', () => {
  const set = build([
    { name: 'a.test', kind: 'exact', action: 0 },
    { name: 'a.test', kind: 'wildcard', action: 0 },
    { name: 'b.test', kind: 'subtree', action: 0 },
  ]);
  assert.equal(set.size, 2);
  assert.equal(answer(set, 'a.test')?.line, 1);
  assert.equal(answer(set, 'x.a.test')?.line, 2);
  assert.equal(answer(set, 'x.a.test')?.entry, '*.a.test');
});

test('name set: a query of any length or shape is answered, never thrown on', () => {
  const set = build([{ name: 'a.test', kind: 'subtree', action: 0 }]);
  for (const q of [
    '',
    '.',
    '..',
    'a.test..',
    '.a.test',
    '\\',
    'a.test\\',
    `${'x.'.repeat(300)}a.test`,
    'ä.a.test',
  ])
    assert.doesNotThrow(() => set.lookup(q), q);
  assert.equal(answer(set, `${'x.'.repeat(300)}a.test`)?.entry, 'a.test');
  assert.equal(answer(set, '.a.test')?.entry, 'a.test', 'an empty first label is still under a.test');
  assert.equal(NameSet.EMPTY.lookup('a.test'), -1);
});

test('name set: 100,000 names, every one found and every absent one missed', () => {
  const builder = new NameSetBuilder(1000, 1000);
  for (let i = 0; i < 100_000; i++) builder.add(`host${i}.zone${i % 97}.test`, 'exact', 0, i + 1, () => {});
  const set = runSync(builder.finish(() => {}));
  assert.equal(set.size, 100_000);
  for (let i = 0; i < 100_000; i++) {
    const slot = set.lookup(`host${i}.zone${i % 97}.test`);
    assert.ok(slot >= 0 && set.line(slot) === i + 1, `host${i}`);
    assert.equal(set.lookup(`host${i}.zone${(i + 1) % 97}.test`), -1);
  }
});

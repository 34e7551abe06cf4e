import { describe, expect, it } from 'vitest';
import { Namespaces } from '../../src/server/core/namespaces.js';
import { withDefaults } from '../../src/server/options.js';

describe('Namespaces', () => {
  const ns = new Namespaces(
    withDefaults({
      defaultNamespace: { historySize: 7, publish: true },
      namespaces: { chat: { historySize: 0, historyTtl: 0, presence: false, publish: false, private: true } },
    }),
  );

  it('resolves configured namespaces, personal channels and the default', () => {
    expect(ns.of('chat:1')).toMatchObject({ namespace: 'chat', history: null, publish: false, private: true });
    expect(ns.of('user:alice')).toMatchObject({ namespace: 'user', history: { size: 1000, ttlMs: 86_400_000 } });
    expect(ns.of('plain')).toMatchObject({ namespace: '', history: { size: 7, ttlMs: 300_000 }, publish: true });
    expect(ns.of('other:x')).toMatchObject({ namespace: 'other', history: { size: 7 } });
  });

  it('never takes options from Object.prototype', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(ns.of(`${name}:x`), name).toMatchObject({ namespace: name, history: { size: 7, ttlMs: 300_000 }, private: false });
    }
  });
});

import { describe, expect, it } from 'vitest';
import { newEpoch } from '../../src/brokers/epoch.js';

describe('newEpoch', () => {
  it('is 8 characters of [A-Za-z0-9_-], safe inside JSON and Redis keys', () => {
    for (let i = 0; i < 100; i++) expect(newEpoch()).toMatch(/^[A-Za-z0-9_-]{8}$/);
  });

  it('does not repeat across many refills of its random pool', () => {
    // 5000 epochs draw 30000 bytes: the 4 KiB pool is refilled 7 times.
    const seen = new Set(Array.from({ length: 5000 }, () => newEpoch()));
    expect(seen.size).toBe(5000);
  });
});

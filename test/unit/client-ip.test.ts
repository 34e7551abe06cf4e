import { describe, expect, it } from 'vitest';
import { clientIp, lastForwarded } from '../../src/server/http/client-ip.js';

describe('client IP for per-IP limits', () => {
  it('is the socket peer without --trust-proxy, whatever X-Forwarded-For says', () => {
    expect(clientIp('10.0.0.9', '1.2.3.4', false)).toBe('10.0.0.9');
  });

  it('behind a trusted proxy is the last X-Forwarded-For address: the one the proxy appended', () => {
    // nginx's $proxy_add_x_forwarded_for appends the address it saw to what the client sent.
    expect(clientIp('10.0.0.1', '203.0.113.7', true)).toBe('203.0.113.7');
    expect(clientIp('10.0.0.1', '6.6.6.6, 203.0.113.7', true)).toBe('203.0.113.7');
    expect(clientIp('10.0.0.1', ['6.6.6.6', '203.0.113.7'], true)).toBe('203.0.113.7');
  });

  it('so a forged first entry cannot move a client to another budget', () => {
    const a = clientIp('10.0.0.1', '1.1.1.1, 203.0.113.7', true);
    const b = clientIp('10.0.0.1', '2.2.2.2, 203.0.113.7', true);
    expect(a).toBe(b);
  });

  it('falls back to the peer when the header is missing or empty', () => {
    expect(clientIp('10.0.0.1', undefined, true)).toBe('10.0.0.1');
    expect(clientIp('10.0.0.1', ' , ', true)).toBe('10.0.0.1');
    expect(clientIp(undefined, undefined, true)).toBe('unknown');
    expect(lastForwarded('1.1.1.1, ')).toBe('1.1.1.1');
  });

  it('counts an IPv4-mapped IPv6 peer as its IPv4 address', () => {
    expect(clientIp('::ffff:127.0.0.1', undefined, false)).toBe('127.0.0.1');
    expect(clientIp('::1', undefined, false)).toBe('::1');
  });
});

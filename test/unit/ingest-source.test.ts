/**
 * `--ingest` URLs: what is accepted, what is refused and why, and that the
 * password never shows; the outbox SQL's names.
 */
import { describe, expect, it } from 'vitest';
import { notifyChannel, outboxSchema, quoteTable } from '../../src/server/ingest/outbox-sql.js';
import { checkIngest, parseIngest, redactIngest } from '../../src/server/ingest/source.js';

describe('--ingest URLs', () => {
  it('takes its parameters off the connection string, with defaults', () => {
    const parsed = parseIngest('postgres://app:secret@db.internal:5433/shop?table=app.outbox&sslmode=require');
    expect(parsed).toEqual({
      ok: true,
      value: {
        kind: 'postgres',
        connection: 'postgres://app:secret@db.internal:5433/shop?sslmode=require',
        table: 'app.outbox',
        dead: undefined,
        pollMs: 1000,
        batch: 100,
        lanes: 16,
        stuckSeconds: 60,
        label: 'postgres://db.internal:5433/shop/app.outbox',
      },
    });
    const tuned = parseIngest('postgresql://h/db?table=outbox&dead=outbox_dead&poll=50&batch=1000&lanes=1&stuck=5');
    expect(tuned.ok && tuned.value).toMatchObject({ dead: 'outbox_dead', pollMs: 50, batch: 1000, lanes: 1, stuckSeconds: 5, connection: 'postgresql://h/db' });
  });

  it.each([
    ['postgres://h/db', /needs \?table=/],
    ['postgres://h/db?table=a;drop', /must be name or schema\.name/],
    ['postgres://h/db?table=a.b.c', /must be name or schema\.name/],
    ['postgres://h/db?table=outbox&dead=outbox', /dead must be another table/],
    ['postgres://h/db?table=outbox&poll=10', /poll must be a whole number from 50 to 60000/],
    ['postgres://h/db?table=outbox&batch=1001', /batch must be/],
    ['postgres://h/db?table=outbox&lanes=0', /lanes must be/],
    ['postgres://h/db?table=outbox&stuck=1.5', /stuck must be/],
    ['kafka://broker:9092', /needs a topic/],
    ['kafka://broker/orders', /brokers must be host:port/],
    ['kafka://b1:9092,b2/orders', /brokers must be host:port/],
    ['kafka://b:9092/or ders', /topic "or ders" must be/],
    ['kafka://b:9092/orders?group=a%20b', /group must be/],
    ['kafka://b:9092/orders?dead=orders', /dead must be another topic/],
    ['kafka://b:9092/orders?from=middle', /from must be earliest or latest/],
    ['kafka://b:9092/orders?stuck=0', /stuck must be/],
    ['kafka://b:9092/orders?table=x', /unknown parameter table/],
    ['mysql://h/db?table=outbox', /unknown scheme mysql:/],
    ['not a url', /not a URL/],
  ])('refuses %s', (value, problem) => {
    expect(checkIngest(value)).toMatch(problem);
  });

  it('kafka:// takes several seed brokers, a topic and a group', () => {
    expect(parseIngest('kafka://k1:9092,k2:9093,[::1]:9094/orders.v1?group=sb-prod&dead=orders.dead&from=latest&stuck=30')).toEqual({
      ok: true,
      value: {
        kind: 'kafka',
        brokers: ['k1:9092', 'k2:9093', '[::1]:9094'],
        topic: 'orders.v1',
        group: 'sb-prod',
        dead: 'orders.dead',
        from: 'latest',
        stuckSeconds: 30,
        label: 'kafka://k1:9092,k2:9093,[::1]:9094/orders.v1',
      },
    });
    const plain = parseIngest('kafka://k:9092/orders');
    expect(plain.ok && plain.value).toMatchObject({ group: 'switchboard', dead: undefined, from: 'earliest', stuckSeconds: 60 });
  });

  it('hides the password in messages', () => {
    expect(redactIngest('postgres://app:secret@h/db?table=t')).toBe('postgres://app:***@h/db?table=t');
    expect(redactIngest('postgres://h/db?table=t')).toBe('postgres://h/db?table=t');
  });
});

describe('the outbox SQL', () => {
  it('quotes the table and names what goes with it after it', () => {
    expect(quoteTable('app.outbox')).toBe('"app"."outbox"');
    expect(notifyChannel('app.outbox')).toBe('switchboard_app_outbox');
    const sql = outboxSchema('app.outbox', 'app.outbox_dead');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "app"."outbox" (');
    expect(sql).toContain('CHECK ((channel IS NULL) <> (user_id IS NULL))');
    expect(sql).toContain(`pg_notify('switchboard_app_outbox', '')`);
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "app"."outbox_dead" (');
    expect(outboxSchema('outbox')).not.toContain('_dead');
  });
});

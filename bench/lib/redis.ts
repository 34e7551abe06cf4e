// What a benchmark's private redis-server says about itself: `INFO`
// sections as fields, its CPU time and its pid.
import { redisCommand } from '../../test/helpers/redis-server.js';

/** The `field:value` lines of an `INFO` reply. */
export function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** One `INFO` section of the redis-server on `port`, as fields. */
export const redisInfo = async (port: number, section: string): Promise<Map<string, string>> => infoFields(await redisCommand(port, ['INFO', section]));

/** CPU time (user + system) the redis-server on `port` has used, in ms. */
export async function redisCpuMs(port: number): Promise<number> {
  const cpu = await redisInfo(port, 'cpu');
  return (Number(cpu.get('used_cpu_user')) + Number(cpu.get('used_cpu_sys'))) * 1000;
}

/** The pid of the redis-server on `port`. */
export async function redisPid(port: number): Promise<number> {
  return Number((await redisInfo(port, 'server')).get('process_id'));
}

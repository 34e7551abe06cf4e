import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/server/config/errors.js';
import { clusterHelpText, MAX_CLUSTER_NODES, nginxUpstream, planCluster } from '../../src/server/cluster-command.js';

const plan = (argv: string[]) => planCluster(argv, {}, '/');

describe('switchboard cluster', () => {
  it('needs --nodes as a whole number from 1 to 32', () => {
    for (const bad of [[], ['--nodes'], ['--nodes', '0'], ['--nodes', '33'], ['--nodes=2.5'], ['--nodes', 'x']]) {
      expect(() => plan([...bad, '--insecure', '--broker', 'redis://127.0.0.1:6379']), bad.join(' ')).toThrow(ConfigError);
    }
  });

  it('refuses the memory broker, which cannot span processes', () => {
    expect(() => plan(['--nodes', '3', '--insecure'])).toThrow(/shared broker/);
  });

  it('suggests start --workers N, with the same N, in place of the memory broker', () => {
    expect(() => plan(['--nodes', '3', '--insecure'])).toThrow(/or run switchboard start --workers 3 for 3 nodes on one port over the memory broker$/);
    expect(() => plan(['--nodes', '2', '--insecure', '--broker', 'memory'])).toThrow(/switchboard start --workers 2 /);
  });

  it('checks the start flags once, with the same messages as start', () => {
    expect(() => plan(['--nodes', '3', '--broker', 'redis://127.0.0.1:6379'])).toThrow(/no authentication configured/);
    expect(() => plan(['--nodes', '3', '--insecure', '--brokr', 'x'])).toThrow(/unknown flag --brokr/);
  });
});

describe('the nginx upstream it prints', () => {
  it('lists one server per node on consecutive ports', () => {
    expect(nginxUpstream({ nodes: 3, startArgs: [], basePort: 9000, host: '0.0.0.0', idPrefix: 'node' })).toBe(
      ['upstream switchboard {', '    server 127.0.0.1:9000;', '    server 127.0.0.1:9001;', '    server 127.0.0.1:9002;', '}'].join('\n'),
    );
  });
});

describe('switchboard cluster --help', () => {
  it('is the cluster command\'s own usage, not start\'s flag list', () => {
    const help = clusterHelpText();
    expect(help).toMatch(/^Usage: switchboard cluster --nodes N/);
    expect(help).toContain(`1 to ${MAX_CLUSTER_NODES} (required)`);
    expect(help).toContain('start --workers N');
    expect(help).toContain('switchboard start --help');
    expect(help).not.toContain('--max-connections');
    expect(help.endsWith('\n')).toBe(true);
  });
});
